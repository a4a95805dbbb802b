"""Kernels against independent references.

CPU: the PyTorch references against naive formulas written here (float64 where it matters) (the
chunked linear cross-entropy: test_loss.py).
GPU (marked `gpu`): every fused kernel (Liger, flash-attn) against its PyTorch reference; skipped
without CUDA or without the package.
"""

from __future__ import annotations

import math

import pytest
import torch

from lit_gpt import kernels
from tests.kernel_helpers import gpu, needs_liger, rel_err


# ============================================================================ CPU: references
def naive_rms_norm(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    """Row by row in float64: x_i / sqrt(sum(x^2)/d + eps) * w_i."""
    x64, w64 = x.double(), w.double()
    out = torch.empty_like(x64)
    rows = x64.reshape(-1, x64.size(-1))
    flat = out.reshape(-1, x64.size(-1))
    for r in range(rows.size(0)):
        ms = sum(float(v) ** 2 for v in rows[r]) / rows.size(1)
        flat[r] = rows[r] / math.sqrt(ms + eps) * w64
    return out


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-6), (torch.bfloat16, 1e-2)])
def test_rms_norm_reference_matches_hand_computation(dtype, tol):
    torch.manual_seed(0)
    x = (torch.randn(3, 5, 24) * 3 + 0.5).to(dtype)
    w = torch.randn(24).to(dtype)
    got = kernels.rms_norm_reference(x, w, 1e-5)
    assert got.dtype == dtype
    assert rel_err(got, naive_rms_norm(x, w, 1e-5)) < tol
    # On CPU the dispatching function must fall back to the reference, whatever `fused` says.
    assert torch.equal(kernels.rms_norm(x, w, 1e-5, fused=True), got)


def complex_rope(x: torch.Tensor, base: int) -> torch.Tensor:
    """LLaMA "rotate half" RoPE as a complex multiplication: pair (i, i + hs/2) times e^{i·pos·θ_i}."""
    T, hs = x.shape[-2], x.shape[-1]
    half = hs // 2
    theta = torch.tensor([base ** (-2.0 * i / hs) for i in range(half)], dtype=torch.float64)
    pos = torch.arange(T, dtype=torch.float64)
    rot = torch.polar(torch.ones(T, half, dtype=torch.float64), pos[:, None] * theta[None, :])  # (T, hs/2)
    z = torch.complex(x[..., :half].double(), x[..., half:].double()) * rot
    return torch.cat((z.real, z.imag), dim=-1)


def test_rope_reference_matches_complex_rotation():
    torch.manual_seed(0)
    B, T, hs = 2, 11, 16
    q = torch.randn(B, 4, T, hs)
    k = torch.randn(B, 2, T, hs)
    cos, sin = kernels.build_rope_cache(T, hs, 10000)
    assert cos.shape == (T, hs) and cos.dtype == torch.float32
    q_rot, k_rot = kernels.apply_rope(q, k, cos, sin, fused=True)  # CPU: the reference
    assert rel_err(q_rot, complex_rope(q, 10000)) < 1e-6
    assert rel_err(k_rot, complex_rope(k, 10000)) < 1e-6
    # A rotation keeps the norm of every pair.
    assert torch.allclose(q_rot.norm(dim=-1), q.norm(dim=-1), rtol=1e-5)


def test_rope_reference_keeps_dtype_and_rotates_in_fp32():
    torch.manual_seed(0)
    q = torch.randn(1, 2, 9, 8).to(torch.bfloat16)
    cos, sin = kernels.build_rope_cache(9, 8, 500)
    out = kernels.apply_rope_reference(q, cos, sin)
    assert out.dtype == torch.bfloat16
    # Only the final rounding to bf16 separates it from the exact rotation of the bf16 input.
    assert rel_err(out, complex_rope(q, 500)) < 2 ** -8


def test_swiglu_reference_matches_formula():
    torch.manual_seed(0)
    gate, up = torch.randn(4, 7, 33, dtype=torch.float64), torch.randn(4, 7, 33, dtype=torch.float64)
    expected = gate / (1 + torch.exp(-gate)) * up
    assert rel_err(kernels.swiglu(gate, up, fused=True), expected) < 1e-12


def explicit_attention(q, k, v, mask=None):
    """Float64 attention with K/V repeated per group (head h reads group h // (H / G))."""
    H, G = q.size(1), k.size(1)
    k = k.double().repeat_interleave(H // G, dim=1)
    v = v.double().repeat_interleave(H // G, dim=1)
    scores = q.double() @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
    if mask is None:
        T = q.size(2)
        mask = torch.ones(T, T, dtype=torch.bool).tril()
    scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1) @ v


@pytest.mark.parametrize("heads,groups", [(4, 4), (6, 2), (4, 1)], ids=["MHA", "GQA", "MQA"])
def test_causal_attention_matches_explicit_gqa(heads, groups):
    torch.manual_seed(0)
    q = torch.randn(2, heads, 13, 8, requires_grad=True)
    k = torch.randn(2, groups, 13, 8, requires_grad=True)
    v = torch.randn(2, groups, 13, 8, requires_grad=True)
    out = kernels.causal_attention(q, k, v, fused=True)
    ref = explicit_attention(q, k, v)
    assert out.shape == (2, heads, 13, 8)
    assert rel_err(out, ref) < 1e-5
    # Gradients flow to the un-repeated K/V: each group sums over its query heads.
    grads = torch.autograd.grad(out.sum(), (q, k, v))
    ref_grads = torch.autograd.grad(ref.sum(), (q, k, v))
    for g, r in zip(grads, ref_grads):
        assert rel_err(g, r) < 1e-5


def test_masked_attention_matches_explicit():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 4, 3, 8), torch.randn(1, 2, 10, 8), torch.randn(1, 2, 10, 8)
    input_pos = torch.tensor([4, 5, 6])
    mask = torch.arange(10).unsqueeze(0) <= input_pos.unsqueeze(1)
    assert rel_err(kernels.masked_attention(q, k, v, mask), explicit_attention(q, k, v, mask)) < 1e-5


def test_liger_on_cpu_refuses_without_the_interpreter(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET=1"):
        with kernels.liger_on_cpu():
            pass
    assert not kernels.use_fused(torch.zeros(1), True)


def test_active_kernels_on_cpu_are_the_references():
    assert kernels.active_kernels(torch.device("cpu"), fused=True) == {
        "rms_norm": "torch", "rope": "torch", "swiglu": "torch", "attention": "torch_sdpa", "loss": "chunked_linear_ce",
    }


# ============================================================================ GPU: fused vs reference


@gpu
@needs_liger
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_liger_rms_norm_matches_reference(dtype, tol):
    torch.manual_seed(0)
    x = torch.randn(4, 256, 2048, device="cuda", dtype=dtype) * 2
    w = (1 + 0.1 * torch.randn(2048, device="cuda")).to(dtype)
    x1, w1 = x.clone().requires_grad_(), w.clone().requires_grad_()
    x2, w2 = x.clone().requires_grad_(), w.clone().requires_grad_()
    y1 = kernels.rms_norm(x1, w1, 1e-5, fused=True)
    y2 = kernels.rms_norm_reference(x2, w2, 1e-5)
    assert y1.dtype == y2.dtype == dtype
    assert rel_err(y1, y2) < tol
    dy = torch.randn_like(y2)
    y1.backward(dy.clone())  # Liger writes dX over dY: give it its own copy
    y2.backward(dy)
    assert rel_err(x1.grad, x2.grad) < tol
    assert rel_err(w1.grad, w2.grad) < tol


@gpu
@needs_liger
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_liger_rope_matches_reference(dtype, tol):
    torch.manual_seed(0)
    B, T, H, G, hs = 2, 512, 8, 2, 64
    cos, sin = kernels.build_rope_cache(T, hs, 10000, device="cuda")
    q_leaf = torch.randn(B, T, H, hs, device="cuda", dtype=dtype, requires_grad=True)
    kv_leaf = torch.randn(B, T, G, 2, hs, device="cuda", dtype=dtype, requires_grad=True)
    q_saved, kv_saved = q_leaf.detach().clone(), kv_leaf.detach().clone()
    # Laid out as the model makes them: q a fresh (B, T, H, hs) intermediate viewed as
    # (B, H, T, hs) (Liger rotates it in place), k a strided slice (Liger rotates a copy).
    q = (q_leaf * 1).transpose(1, 2)
    k = kv_leaf[:, :, :, 0].transpose(1, 2)
    qr, kr = kernels.apply_rope(q, k, cos, sin, fused=True)
    q_ref = q_saved.transpose(1, 2).clone().requires_grad_()
    k_ref = kv_saved[:, :, :, 0].transpose(1, 2).clone().requires_grad_()
    q2, k2 = kernels.apply_rope(q_ref, k_ref, cos, sin, fused=False)
    assert rel_err(qr, q2) < tol and rel_err(kr, k2) < tol
    dq, dk = torch.randn_like(q2), torch.randn_like(k2)
    # Liger's backward overwrites a (B, T, H, hs)-contiguous incoming gradient: give it copies.
    torch.autograd.backward((qr, kr), (dq.clone(), dk.clone()))
    torch.autograd.backward((q2, k2), (dq, dk))
    assert rel_err(q_leaf.grad.transpose(1, 2), q_ref.grad) < tol
    assert rel_err(kv_leaf.grad[:, :, :, 0].transpose(1, 2), k_ref.grad) < tol
    # What the caller still holds is untouched.
    assert torch.equal(q_leaf.detach(), q_saved) and torch.equal(kv_leaf.detach(), kv_saved)


@gpu
@needs_liger
@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.bfloat16, 1e-2)])
def test_liger_swiglu_matches_reference(dtype, tol):
    torch.manual_seed(0)
    a = torch.randn(4, 256, 1408, device="cuda", dtype=dtype)
    b = torch.randn(4, 256, 1408, device="cuda", dtype=dtype)
    a1, b1 = a.clone().requires_grad_(), b.clone().requires_grad_()
    a2, b2 = a.clone().requires_grad_(), b.clone().requires_grad_()
    # Liger's backward overwrites its saved inputs with their gradients; in the model those are
    # fresh projection outputs, as the `* 1` intermediates are here.
    y1, y2 = kernels.swiglu(a1 * 1, b1 * 1, fused=True), kernels.swiglu_reference(a2, b2)
    assert rel_err(y1, y2) < tol
    dy = torch.randn_like(y2)
    y1.backward(dy)
    y2.backward(dy)
    assert rel_err(a1.grad, a2.grad) < tol and rel_err(b1.grad, b2.grad) < tol
    assert torch.equal(a1.detach(), a) and torch.equal(b1.detach(), b)


@gpu
@pytest.mark.skipif(not (torch.cuda.is_available() and kernels.flash_attn_available()), reason="needs CUDA and flash-attn")
def test_flash_attn_matches_sdpa():
    torch.manual_seed(0)
    q = torch.randn(2, 8, 256, 64, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, 2, 256, 64, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(2, 2, 256, 64, device="cuda", dtype=torch.bfloat16)
    assert rel_err(kernels.causal_attention(q, k, v, fused=True), explicit_attention(q, k, v)) < 1e-2


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sdpa_gqa_on_cuda_matches_explicit():
    torch.manual_seed(0)
    q = torch.randn(2, 8, 256, 64, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, 2, 256, 64, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(2, 2, 256, 64, device="cuda", dtype=torch.bfloat16)
    assert rel_err(kernels.causal_attention(q, k, v, fused=False), explicit_attention(q, k, v)) < 1e-2


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fused_model_matches_reference_model_on_cuda():
    from lit_gpt.config import Config
    from lit_gpt.model import GPT

    torch.manual_seed(0)
    config = Config.from_name("nano_LLaMA", vocab_size=1000)
    ref = GPT(config, fused=False).cuda()
    fused = GPT(config, fused=True).cuda()
    fused.load_state_dict(ref.state_dict())
    x = torch.randint(0, 1000, (2, 256), device="cuda")
    y = torch.randint(0, 1000, (2, 256), device="cuda")
    losses = []
    for model in (ref, fused):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(x, targets=y)
        loss.backward()
        losses.append(loss.item())
    assert abs(losses[0] - losses[1]) < 1e-2
    for (name, p), q in zip(ref.named_parameters(), fused.parameters()):
        assert rel_err(q.grad, p.grad) < 5e-2, name


@gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_blocks_match_eager_on_cuda():
    from lit_gpt.compile import compile_blocks
    from lit_gpt.config import Config
    from lit_gpt.model import GPT

    torch.manual_seed(0)
    config = Config.from_name("micro_LLaMA", vocab_size=512)
    eager = GPT(config, fused=False).cuda()
    compiled = GPT(config, fused=True).cuda()
    compiled.load_state_dict(eager.state_dict())
    compile_blocks(compiled)
    x = torch.randint(0, 512, (2, 128), device="cuda")
    y = torch.randint(0, 512, (2, 128), device="cuda")
    for model in (eager, compiled):
        model(x, targets=y).backward()
    for (name, p), q in zip(eager.named_parameters(), compiled.parameters()):
        assert rel_err(q.grad, p.grad) < 1e-4, name
