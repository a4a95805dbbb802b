"""The chunked linear cross-entropy (lit_gpt/loss.py) against F.cross_entropy on the full logits;
on a GPU (marked `gpu`), Liger's fused linear cross-entropy against both."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from lit_gpt.loss import IGNORE_INDEX, chunked_linear_cross_entropy, linear_cross_entropy
from tests.kernel_helpers import gpu, needs_liger, rel_err


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
