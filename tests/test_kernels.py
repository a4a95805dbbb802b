"""Kernels against independent references.

CPU: the PyTorch references against naive formulas written here (float64 where it matters), and
the chunked linear cross-entropy against F.cross_entropy on the full logits.
GPU (marked `gpu`): every fused kernel (Liger, flash-attn) against its PyTorch reference; skipped
without CUDA or without the package.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lit_gpt import kernels
from lit_gpt.loss import IGNORE_INDEX, chunked_linear_cross_entropy, linear_cross_entropy


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


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


# ============================================================================ CPU: chunked linear CE
def full_logits_ce(h, w, t, ignore_index=IGNORE_INDEX):
    logits = h.reshape(-1, h.size(-1)) @ w.t()
    return F.cross_entropy(logits, t.reshape(-1), ignore_index=ignore_index)


def make_problem(n=50, d=24, V=37, dtype=torch.float32, ignore_every=0, seed=0):
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, generator=g, dtype=dtype).requires_grad_()
    w = (torch.randn(V, d, generator=g, dtype=dtype) * 0.5).requires_grad_()
    t = torch.randint(0, V, (n,), generator=g)
    if ignore_every:
        t[::ignore_every] = IGNORE_INDEX
    return h, w, t


@pytest.mark.parametrize("chunk_size", [1, 7, 16, 50, 64, 4096])
@pytest.mark.parametrize("ignore_every", [0, 3])
def test_chunked_ce_matches_full_logits_fp32(chunk_size, ignore_every):
    h, w, t = make_problem(ignore_every=ignore_every)
    loss = chunked_linear_cross_entropy(h, w, t, chunk_size=chunk_size)
    gh, gw = torch.autograd.grad(loss, (h, w))
    ref = full_logits_ce(h, w, t)
    rh, rw = torch.autograd.grad(ref, (h, w))
    assert abs(loss.item() - ref.item()) < 1e-5
    assert (gh - rh).abs().max().item() < 1e-5
    assert (gw - rw).abs().max().item() < 1e-5
    if ignore_every:
        assert torch.all(gh[::ignore_every] == 0)  # ignored rows get no gradient


def test_chunked_ce_float64_is_exact_and_scales_with_upstream_gradient():
    h, w, t = make_problem(n=21, dtype=torch.float64, ignore_every=4)
    loss = chunked_linear_cross_entropy(h, w, t, chunk_size=8)
    assert loss.dtype == torch.float64
    (3.0 * loss).backward()
    ref_h, ref_w = h.detach().clone().requires_grad_(), w.detach().clone().requires_grad_()
    (3.0 * full_logits_ce(ref_h, ref_w, t).double()).backward()
    torch.testing.assert_close(h.grad, ref_h.grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(w.grad, ref_w.grad, rtol=1e-12, atol=1e-12)


def test_chunked_ce_accepts_batched_shapes_and_dispatch_falls_back_on_cpu():
    h, w, t = make_problem(n=24)
    h3 = h.detach().reshape(2, 12, -1).requires_grad_()
    loss = linear_cross_entropy(h3, w, t.reshape(2, 12), chunk_size=5, fused=True)
    assert abs(loss.item() - full_logits_ce(h, w, t).item()) < 1e-5
    loss.backward()
    assert h3.grad.shape == h3.shape


@pytest.mark.parametrize("which", ["hidden", "weight"])
def test_chunked_ce_gradient_of_one_input_only(which):
    h, w, t = make_problem(ignore_every=5)
    if which == "hidden":
        w = w.detach()
        inputs = (h,)
    else:
        h = h.detach()
        inputs = (w,)
    got = torch.autograd.grad(chunked_linear_cross_entropy(h, w, t, chunk_size=9), inputs)[0]
    ref = torch.autograd.grad(full_logits_ce(h, w, t), inputs)[0]
    assert (got - ref).abs().max().item() < 1e-5


def test_chunked_ce_all_targets_ignored_gives_zero_not_nan():
    h, w, t = make_problem(n=10)
    t[:] = IGNORE_INDEX
    loss = chunked_linear_cross_entropy(h, w, t, chunk_size=4)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.all(h.grad == 0) and torch.all(w.grad == 0)


def test_chunked_ce_under_cpu_autocast_bf16():
    h, w, t = make_problem(n=64, d=32, V=200, ignore_every=7)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = chunked_linear_cross_entropy(h, w, t, chunk_size=24)
    gh, gw = torch.autograd.grad(loss, (h, w))
    # Gradients come back in the inputs' dtype, as for an autocast nn.Linear.
    assert loss.dtype == torch.float32 and gh.dtype == torch.float32 and gw.dtype == torch.float32
    ref = full_logits_ce(h.double(), w.double(), t)
    rh, rw = torch.autograd.grad(ref, (h, w))
    assert abs(loss.item() - ref.item()) / ref.item() < 1e-2
    assert rel_err(gh, rh) < 1e-2
    assert rel_err(gw, rw) < 1e-2


def test_chunked_ce_no_grad_computes_the_loss_only():
    h, w, t = make_problem(n=40, d=16, V=30)
    n, d, V = 40, 16, 30
    with FlopCounterMode(display=False) as with_grad:
        loss = chunked_linear_cross_entropy(h, w, t, chunk_size=16)
    # Forward computes logits, d(loss)/dh and d(loss)/dW: three matmuls of 2·n·d·V FLOPs.
    assert with_grad.get_total_flops() == 3 * 2 * n * d * V
    with torch.no_grad(), FlopCounterMode(display=False) as without_grad:
        value = chunked_linear_cross_entropy(h, w, t, chunk_size=16)
    assert without_grad.get_total_flops() == 2 * n * d * V
    assert value.grad_fn is None and not value.requires_grad
    assert abs(value.item() - loss.item()) < 1e-6


def test_chunked_ce_rejects_bad_chunk_size():
    h, w, t = make_problem(n=4)
    with pytest.raises(ValueError, match="chunk_size"):
        chunked_linear_cross_entropy(h, w, t, chunk_size=0)


# ============================================================================ GPU: fused vs reference
def _liger_ok() -> bool:
    return torch.cuda.is_available() and kernels.liger_available()


needs_liger = pytest.mark.skipif(not _liger_ok(), reason="needs CUDA and liger-kernel")
gpu = pytest.mark.gpu


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
@needs_liger
@pytest.mark.parametrize("mode", ["fp32", "autocast-bf16", "bf16"])
def test_liger_linear_ce_matches_chunked_and_full(mode):
    torch.manual_seed(0)
    n, d, V = 3000, 512, 32064
    dtype = torch.bfloat16 if mode == "bf16" else torch.float32
    h = torch.randn(n, d, device="cuda", dtype=dtype)
    w = (torch.randn(V, d, device="cuda") * 0.05).to(dtype)
    t = torch.randint(0, V, (n,), device="cuda")
    t[::11] = IGNORE_INDEX
    results = {}
    for path in ("liger", "chunked"):
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=mode == "autocast-bf16"):
            loss = linear_cross_entropy(hh, ww, t, chunk_size=1024, fused=path == "liger")
        loss.backward()
        results[path] = (loss.float(), hh.grad, ww.grad)
    hr, wr = h.double().requires_grad_(), w.double().requires_grad_()
    ref = F.cross_entropy(hr @ wr.t(), t, ignore_index=IGNORE_INDEX)
    ref.backward()
    tol = 1e-4 if mode == "fp32" else 2e-2
    for path, (loss, gh, gw) in results.items():
        assert gh.dtype == h.dtype and gw.dtype == w.dtype, path
        assert abs(loss.item() - ref.item()) / ref.item() < tol, path
        assert rel_err(gh, hr.grad) < tol, path
        assert rel_err(gw, wr.grad) < tol, path


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
