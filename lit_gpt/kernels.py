"""The elementwise kernels of the LLaMA block, with plain PyTorch references.

Each public function takes tensors and returns tensors; none owns parameters, so the model's
parameter names never depend on which kernel runs. A fused implementation (Liger-Kernel's Triton
kernels, flash-attn) is used only when it imports, the tensors are on CUDA and the caller allows
it; otherwise the PyTorch reference below runs. Inside `liger_on_cpu()` Liger's kernels also take
CPU tensors, through Triton's interpreter: that is how the tests check them without a GPU. The references are what the tests compare the
fused versions against, and what `torch.compile` fuses by itself (see `lit_gpt.compile`).

The Liger calls follow liger-kernel 0.8.5 (`liger_kernel/ops/rms_norm.py`, `rope.py`,
`swiglu.py`); their argument lists have been stable since 0.5.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.util
import os
import warnings
from typing import Iterator

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=None)
def package_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@functools.lru_cache(maxsize=None)
def importable(module: str) -> bool:
    # Installed is not enough: a Triton or CUDA mismatch only shows at import. Try once, warn
    # once, and let every caller fall back to the reference instead of failing mid-run.
    top = module.split(".")[0]
    if not package_available(top):
        return False
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - any import failure means "not usable here"
        warnings.warn(f"{module} is installed but does not import ({error!r}); using PyTorch kernels")
        return False
    return True


def liger_available() -> bool:
    return package_available("liger_kernel") and package_available("triton")


def flash_attn_available() -> bool:
    return package_available("flash_attn")


_liger_on_cpu = False


@contextlib.contextmanager
def liger_on_cpu() -> Iterator[None]:
    """Within this block Liger's kernels run on CPU tensors too, in Triton's interpreter.

    For tests on machines without a GPU: the interpreter executes each Triton program in NumPy,
    thousands of times slower than a GPU. It is chosen when a kernel is defined, so
    `TRITON_INTERPRET=1` must be set before triton or liger_kernel is first imported; this
    refuses to start otherwise (or without liger-kernel) instead of quietly running the references.
    """
    global _liger_on_cpu
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("liger_on_cpu() needs TRITON_INTERPRET=1 set before triton is imported")
    if not (liger_available() and importable("liger_kernel.ops") and importable("liger_kernel.transformers.functional")):
        raise RuntimeError("liger_on_cpu() needs liger-kernel and triton installed and importable")
    previous, _liger_on_cpu = _liger_on_cpu, True
    try:
        yield
    finally:
        _liger_on_cpu = previous


def use_fused(x: torch.Tensor, allowed: bool) -> bool:
    """Fused kernels run on CUDA tensors (CPU ones inside `liger_on_cpu()`), where Liger-Kernel imports."""
    on_device = x.is_cuda or (_liger_on_cpu and x.device.type == "cpu")
    return allowed and on_device and liger_available() and importable("liger_kernel.ops")


def use_flash_attn(q: torch.Tensor, allowed: bool) -> bool:
    return (
        allowed
        and q.is_cuda
        and q.dtype in (torch.float16, torch.bfloat16)
        and flash_attn_available()
        and importable("flash_attn")
    )


def active_kernels(device: torch.device, fused: bool = True) -> dict[str, str]:
    """Which implementation each kernel uses for tensors on `device` (for logs and benchmarks)."""
    probe = torch.empty(0, device=device)
    liger = use_fused(probe, fused)
    flash = use_flash_attn(probe.to(torch.bfloat16), fused)
    liger_loss = liger and importable("liger_kernel.transformers.functional")
    return {
        "rms_norm": "liger" if liger else "torch",
        "rope": "liger" if liger else "torch",
        "swiglu": "liger" if liger else "torch",
        "attention": "flash_attn" if flash else "torch_sdpa",
        "loss": "liger_fused_linear_ce" if liger_loss else "chunked_linear_ce",
    }


# ----------------------------------------------------------------------------- RMSNorm
def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # Normalise in fp32 (bf16 sums of squares lose precision), then scale in the input dtype.
    x_fp32 = x.float()
    normed = x_fp32 * torch.rsqrt(x_fp32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (normed * weight.float()).to(x.dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, fused: bool = True) -> torch.Tensor:
    if use_fused(x, fused):
        from liger_kernel.ops.rms_norm import LigerRMSNormFunction

        # (X, W, eps, offset, casting_mode, in_place). "llama": the inverse RMS in fp32, as
        # transformers' LlamaRMSNorm. in_place: backward writes dX over dY, as Liger's own
        # LlamaRMSNorm replacement does. In the model dY is autograd's buffer (the summed
        # gradient of the norm's consumers), read by nothing else.
        return LigerRMSNormFunction.apply(x, weight, eps, 0.0, "llama", True)
    return rms_norm_reference(x, weight, eps)


# ----------------------------------------------------------------------------- RoPE
def build_rope_cache(seq_len: int, head_size: int, base: int, device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of shape (seq_len, head_size) in fp32, NeoX/LLaMA "rotate half" layout."""
    inv_freq = 1.0 / (base ** (torch.arange(0, head_size, 2, device=device, dtype=torch.float32) / head_size))
    positions = torch.arange(seq_len, device=device, dtype=torch.float32)
    freqs = torch.outer(positions, inv_freq)  # (T, hs/2)
    angles = torch.cat((freqs, freqs), dim=-1)  # (T, hs)
    return angles.cos(), angles.sin()


def apply_rope_reference(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """x: (B, n_heads, T, hs); cos, sin: (T, hs)."""
    half = x.size(-1) // 2
    x1, x2 = x[..., :half], x[..., half:]
    rotated = torch.cat((-x2, x1), dim=-1)
    return (x.float() * cos + rotated.float() * sin).to(x.dtype)


def apply_rope(
    q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, fused: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """q: (B, n_head, T, hs), k: (B, n_query_groups, T, hs), cos/sin: (T, hs).

    Fused path: Liger rotates a (B, T, heads, hs)-contiguous tensor in place. When q (or k) is
    already the transposed view of such a tensor, as the model's q is (a fresh reshape of the
    qkv projection), that tensor itself is overwritten and no copy is made; otherwise Liger
    rotates a copy. Callers therefore pass tensors they do not read again, like the model does.

    Backward works the same way on the incoming gradients: a dq (dk) that is the transposed view
    of a (B, T, heads, hs)-contiguous tensor is overwritten with the gradient of q (k). In the
    model those gradients are autograd's own buffers from attention's backward, read by nothing
    else; code that passes its own gradient tensors (`torch.autograd.backward(outputs, grads)`)
    and reads them afterwards must pass clones.
    """
    if use_fused(q, fused) and q.size(2) == cos.size(0):
        from liger_kernel.ops.rope import LigerRopeFunction

        # (q, k, cos, sin) with cos/sin (1, T, hs): a view, no copy. Up to liger-kernel 0.6.3 a
        # 2-D cos was read as a batch of T rows, hence the explicit batch dim. cos/sin stay fp32:
        # Liger then rotates in fp32 and stores in q's dtype, as the reference does.
        return LigerRopeFunction.apply(q, k, cos.unsqueeze(0), sin.unsqueeze(0))
    return apply_rope_reference(q, cos, sin), apply_rope_reference(k, cos, sin)


# ----------------------------------------------------------------------------- SwiGLU
def swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def swiglu(gate: torch.Tensor, up: torch.Tensor, fused: bool = True) -> torch.Tensor:
    if use_fused(gate, fused):
        from liger_kernel.ops.swiglu import LigerSiLUMulFunction

        # Saves only gate and up for backward (the reference also keeps silu(gate)).
        return LigerSiLUMulFunction.apply(gate, up)
    return swiglu_reference(gate, up)


# ----------------------------------------------------------------------------- attention
def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fused: bool = True) -> torch.Tensor:
    """Causal self-attention over a full sequence.

    q: (B, n_head, T, hs); k, v: (B, n_query_groups, T, hs). Returns (B, n_head, T, hs).
    Grouped K/V are never repeated in memory: flash-attn and SDPA (enable_gqa) read them per
    group; query head h uses group h // (n_head // n_query_groups) in both.
    """
    if use_flash_attn(q, fused):
        from flash_attn import flash_attn_func

        # flash_attn_func(q, k, v, dropout_p, softmax_scale, causal) wants (B, T, heads, hs).
        y = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)
        return y.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.size(1) != k.size(1))


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention with an explicit boolean mask (True = attend), used with the KV cache."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.size(1) != k.size(1))
