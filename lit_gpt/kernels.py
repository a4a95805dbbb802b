"""The elementwise kernels of the LLaMA block, with plain PyTorch references.

Each public function takes tensors and returns tensors; none owns parameters, so the model's
parameter names never depend on which kernel runs. A fused implementation (Liger-Kernel's Triton
kernels, flash-attn) is used only when it is installed, the tensors are on CUDA and the caller
allows it; otherwise the PyTorch reference below runs. The references are what the tests compare
the fused versions against.
"""

from __future__ import annotations

import functools
import importlib.util

import torch
import torch.nn.functional as F


@functools.lru_cache(maxsize=None)
def package_available(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


def liger_available() -> bool:
    return package_available("liger_kernel") and package_available("triton")


def flash_attn_available() -> bool:
    return package_available("flash_attn")


def use_fused(x: torch.Tensor, allowed: bool) -> bool:
    """Fused kernels run only on CUDA tensors, and only where Liger-Kernel is importable."""
    return allowed and x.is_cuda and liger_available()


# ----------------------------------------------------------------------------- RMSNorm
def rms_norm_reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # Normalise in fp32 (bf16 sums of squares lose precision), then scale in the input dtype.
    x_fp32 = x.float()
    normed = x_fp32 * torch.rsqrt(x_fp32.pow(2).mean(dim=-1, keepdim=True) + eps)
    return (normed * weight.float()).to(x.dtype)


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float, fused: bool = True) -> torch.Tensor:
    if use_fused(x, fused):
        from liger_kernel.ops.rms_norm import LigerRMSNormFunction

        # casting_mode "llama": compute in fp32, cast to the input dtype before the weight multiply,
        # matching transformers' LlamaRMSNorm.
        return LigerRMSNormFunction.apply(x, weight, eps, 0.0, "llama", False)
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
    """q: (B, n_head, T, hs), k: (B, n_query_groups, T, hs), cos/sin: (T, hs)."""
    if use_fused(q, fused) and q.size(2) == cos.size(0):
        from liger_kernel.ops.rope import LigerRopeFunction

        # Liger takes (B, heads, T, hs) and cos/sin of shape (1, T, hs); it rotates in place on
        # contiguous copies, so hand it contiguous tensors.
        return LigerRopeFunction.apply(
            q.contiguous(), k.contiguous(), cos.unsqueeze(0).to(q.dtype), sin.unsqueeze(0).to(q.dtype)
        )
    return apply_rope_reference(q, cos, sin), apply_rope_reference(k, cos, sin)


# ----------------------------------------------------------------------------- SwiGLU
def swiglu_reference(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def swiglu(gate: torch.Tensor, up: torch.Tensor, fused: bool = True) -> torch.Tensor:
    if use_fused(gate, fused):
        from liger_kernel.ops.swiglu import LigerSiLUMulFunction

        return LigerSiLUMulFunction.apply(gate, up)
    return swiglu_reference(gate, up)


# ----------------------------------------------------------------------------- attention
def causal_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, fused: bool = True) -> torch.Tensor:
    """Causal self-attention over a full sequence.

    q: (B, n_head, T, hs); k, v: (B, n_query_groups, T, hs). Returns (B, n_head, T, hs).
    Grouped K/V are never repeated in memory: flash-attn and SDPA (enable_gqa) read them per group.
    """
    if fused and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16) and flash_attn_available():
        from flash_attn import flash_attn_func

        # flash-attn wants (B, T, heads, hs).
        y = flash_attn_func(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), causal=True)
        return y.transpose(1, 2)
    return F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=q.size(1) != k.size(1))


def masked_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Attention with an explicit boolean mask (True = attend), used with the KV cache."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=q.size(1) != k.size(1))
