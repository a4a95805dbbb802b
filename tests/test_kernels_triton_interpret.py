"""Liger's kernels on CPU, in Triton's interpreter, at the project's call sites.

Each test runs in a child process with TRITON_INTERPRET=1 (see `triton_interpreter`), inside
`kernels.liger_on_cpu()`, and checks Liger's RMSNorm, RoPE, SwiGLU and fused linear
cross-entropy, and the whole `GPT(fused=True)`, against formulas written here in float64 and
against the reference path. Only fp32 (and bf16 autocast for the loss, whose kernel computes in
fp32): the interpreter's bf16 arithmetic is wrong, so bf16 kernels are checked on a GPU only
(`-m gpu` in test_kernels.py). Sizes are small: the interpreter runs each Triton program in NumPy.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from tests.triton_interpreter import interpreted

from lit_gpt import kernels
from lit_gpt import loss as loss_module
from lit_gpt.config import Config
from lit_gpt.loss import IGNORE_INDEX, chunked_linear_cross_entropy, linear_cross_entropy
from lit_gpt.model import GPT

pytestmark = pytest.mark.skipif(
    not kernels.liger_available(), reason="needs liger-kernel and triton (requirements.txt)"
)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def autograd_nodes(t: torch.Tensor) -> set[str]:
    """Names of every backward node that produced `t`: shows which kernels really ran."""
    seen, names, stack = set(), set(), [t.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(next_node for next_node, _ in node.next_functions)
    return names


@interpreted
def test_liger_is_selected_for_cpu_tensors():
    assert kernels.active_kernels(torch.device("cpu"), fused=True) == {
        "rms_norm": "liger", "rope": "liger", "swiglu": "liger", "attention": "torch_sdpa",
        "loss": "liger_fused_linear_ce",
    }
    # fused=False still means the references.
    assert kernels.active_kernels(torch.device("cpu"), fused=False)["rms_norm"] == "torch"


# ----------------------------------------------------------------------------- RMSNorm
@interpreted
def test_rms_norm_forward_backward_and_dx_written_over_dy():
    torch.manual_seed(0)
    eps = 1e-5
    x_leaf = (torch.randn(2, 16, 96) * 2 + 0.3).requires_grad_()
    w_leaf = (1 + 0.1 * torch.randn(96)).requires_grad_()
    y = kernels.rms_norm(x_leaf * 1, w_leaf, eps, fused=True)  # a fresh input, as a block's residual
    assert "LigerRMSNormFunctionBackward" in autograd_nodes(y)

    x64, w64 = x_leaf.detach().double().requires_grad_(), w_leaf.detach().double().requires_grad_()
    ref = x64 * torch.rsqrt(x64.pow(2).mean(-1, keepdim=True) + eps) * w64
    assert y.dtype == torch.float32 and rel_err(y, ref) < 1e-6

    dy = torch.randn_like(y)
    dy_given = dy.clone()
    y.backward(dy_given)
    ref.backward(dy.double())
    assert rel_err(x_leaf.grad, x64.grad) < 1e-6 and rel_err(w_leaf.grad, w64.grad) < 1e-6
    # in_place=True: Liger's backward stores dX in the dY it was handed (the model's dY is
    # autograd's own buffer, which nothing else reads).
    torch.testing.assert_close(dy_given, x_leaf.grad, rtol=0, atol=0)


# ----------------------------------------------------------------------------- RoPE
def complex_rope(x: torch.Tensor, base: int) -> torch.Tensor:
    """Rotate-half RoPE as a float64 complex product: pair (i, i + hs/2) times e^{i·pos·θ_i}."""
    T, hs = x.shape[-2], x.shape[-1]
    half = hs // 2
    theta = base ** (-2.0 * torch.arange(half, dtype=torch.float64) / hs)
    rot = torch.polar(torch.ones(T, half, dtype=torch.float64), torch.arange(T, dtype=torch.float64)[:, None] * theta)
    z = torch.complex(x[..., :half].double(), x[..., half:].double()) * rot
    return torch.cat((z.real, z.imag), dim=-1)


@interpreted
def test_rope_at_the_models_call_site_and_what_it_overwrites():
    torch.manual_seed(0)
    B, T, H, G, hs = 2, 16, 4, 2, 32
    cos, sin = kernels.build_rope_cache(T, hs, 10000)
    q_leaf = torch.randn(B, T, H, hs, requires_grad=True)
    kv_leaf = torch.randn(B, T, G, 2, hs, requires_grad=True)
    q_saved, kv_saved = q_leaf.detach().clone(), kv_leaf.detach().clone()
    # As in CausalSelfAttention: q a fresh (B, T, H, hs) tensor seen as (B, H, T, hs); k a
    # strided slice of the qkv projection.
    q_fresh = q_leaf * 1
    q = q_fresh.transpose(1, 2)
    k = kv_leaf[:, :, :, 0].transpose(1, 2)
    qr, kr = kernels.apply_rope(q, k, cos, sin, fused=True)
    assert "LigerRopeFunctionBackward" in autograd_nodes(qr)
    assert rel_err(qr, complex_rope(q_saved.transpose(1, 2), 10000)) < 1e-6
    assert rel_err(kr, complex_rope(kv_saved[:, :, :, 0].transpose(1, 2), 10000)) < 1e-6
    # Forward: the fresh q is rotated in place (no copy); the projection behind k is untouched.
    assert qr.data_ptr() == q_fresh.data_ptr()
    assert torch.equal(kv_leaf.detach(), kv_saved) and torch.equal(q_leaf.detach(), q_saved)

    # Backward: a (B, T, H, hs)-contiguous incoming gradient is overwritten, so pass clones.
    dq = torch.randn(B, T, H, hs).transpose(1, 2)
    dk = torch.randn(B, T, G, hs).transpose(1, 2)
    dq_given = dq.clone(memory_format=torch.preserve_format)
    torch.autograd.backward((qr, kr), (dq_given, dk.clone(memory_format=torch.preserve_format)))
    assert not torch.equal(dq_given, dq)
    q64 = q_saved.transpose(1, 2).double().requires_grad_()
    k64 = kv_saved[:, :, :, 0].transpose(1, 2).double().requires_grad_()
    torch.autograd.backward((complex_rope(q64, 10000), complex_rope(k64, 10000)), (dq.double(), dk.double()))
    assert rel_err(q_leaf.grad.transpose(1, 2), q64.grad) < 1e-6
    assert rel_err(kv_leaf.grad[:, :, :, 0].transpose(1, 2), k64.grad) < 1e-6
    assert torch.all(kv_leaf.grad[:, :, :, 1] == 0)  # v's slice gets nothing from RoPE


# ----------------------------------------------------------------------------- SwiGLU
@interpreted
def test_swiglu_forward_backward_on_fresh_projections():
    torch.manual_seed(0)
    a_leaf = torch.randn(2, 16, 176, requires_grad=True)
    b_leaf = torch.randn(2, 16, 176, requires_grad=True)
    a_saved, b_saved = a_leaf.detach().clone(), b_leaf.detach().clone()
    # Liger's backward overwrites its saved inputs with their gradients; in the model those are
    # the fresh outputs of w1 and w2, as the `* 1` intermediates are here.
    y = kernels.swiglu(a_leaf * 1, b_leaf * 1, fused=True)
    assert "LigerSiLUMulFunctionBackward" in autograd_nodes(y)
    a64, b64 = a_saved.double().requires_grad_(), b_saved.double().requires_grad_()
    ref = a64 / (1 + torch.exp(-a64)) * b64
    assert rel_err(y, ref) < 1e-6
    dy = torch.randn_like(y)
    y.backward(dy)
    ref.backward(dy.double())
    assert rel_err(a_leaf.grad, a64.grad) < 1e-6 and rel_err(b_leaf.grad, b64.grad) < 1e-6
    assert torch.equal(a_leaf.detach(), a_saved) and torch.equal(b_leaf.detach(), b_saved)


# ----------------------------------------------------------------------------- fused linear CE
@interpreted
@pytest.mark.parametrize("vocab", [4096, 32064])
@pytest.mark.parametrize("mode", ["fp32", "autocast-bf16"])
def test_fused_linear_cross_entropy(monkeypatch, mode, vocab):
    calls = []
    liger = loss_module.liger_linear_cross_entropy
    monkeypatch.setattr(loss_module, "liger_linear_cross_entropy", lambda *a: calls.append(1) or liger(*a))
    torch.manual_seed(0)
    n, d = 32, 64
    # An upstream gradient other than 1 (as with gradient accumulation) makes Liger scale its
    # stored weight gradient with one interpreted program per vocabulary row: at 32064 rows that
    # alone takes a minute, so the large vocabulary is checked with the plain loss.backward().
    scale = 2.0 if vocab == 4096 else 1.0
    h = torch.randn(2, n // 2, d)
    w = torch.randn(vocab, d) * 0.05
    t = torch.randint(0, vocab, (2, n // 2))
    t[:, ::7] = IGNORE_INDEX
    results = {}
    for path in ("liger", "chunked"):
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
            if path == "liger":
                loss = linear_cross_entropy(hh, ww, t, fused=True)
            else:
                loss = chunked_linear_cross_entropy(hh, ww, t, chunk_size=16)
        (scale * loss).backward()
        results[path] = (loss, hh.grad, ww.grad)
    assert calls == [1]
    h64, w64 = h.double().requires_grad_(), w.double().requires_grad_()
    ref = F.cross_entropy((h64 @ w64.t()).reshape(n, vocab), t.reshape(n), ignore_index=IGNORE_INDEX)
    (scale * ref).backward()
    tol = 1e-5 if mode == "fp32" else 1e-2
    for path, (loss, gh, gw) in results.items():
        assert loss.dtype == gh.dtype == gw.dtype == torch.float32, path
        assert abs(loss.item() - ref.item()) / ref.item() < tol, path
        assert rel_err(gh, h64.grad) < tol and rel_err(gw, w64.grad) < tol, path
        assert torch.all(gh[:, ::7] == 0), path  # ignored targets give no gradient


# ----------------------------------------------------------------------------- the model
@interpreted
def test_fused_model_matches_reference_model():
    torch.manual_seed(0)
    config = Config.from_name("micro_LLaMA", vocab_size=512)  # 2 layers, d 64, 4 heads in 2 groups
    ref = GPT(config, fused=False)
    fused = GPT(config, fused=True)
    fused.load_state_dict(ref.state_dict())
    x = torch.randint(0, config.vocab_size, (2, 16))
    y = torch.randint(0, config.vocab_size, (2, 16))
    y[0, :5] = IGNORE_INDEX
    losses = []
    for model in (ref, fused):
        loss = model(x, targets=y)
        loss.backward()
        losses.append(loss)
    assert {"LigerRMSNormFunctionBackward", "LigerRopeFunctionBackward", "LigerSiLUMulFunctionBackward",
            "LigerFusedLinearCrossEntropyFunctionBackward"} <= autograd_nodes(losses[1])
    assert not any(name.startswith("Liger") for name in autograd_nodes(losses[0]))
    assert abs(losses[0].item() - losses[1].item()) < 1e-5
    for (name, p), q in zip(ref.named_parameters(), fused.parameters()):
        assert rel_err(q.grad, p.grad) < 1e-5, name
    # Logits (no targets) go through the same fused blocks.
    with torch.no_grad():
        torch.testing.assert_close(fused(x), ref(x), rtol=1e-5, atol=1e-5)
