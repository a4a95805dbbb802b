"""Cross-entropy of the output projection without materialising the full logits.

The (B·T × vocab) fp32 logits of a 4096-token, 32k-vocabulary micro batch of 8 take 4 GiB, and the
autograd graph of a plain `lm_head` + `cross_entropy` keeps them (and their softmax) alive until
backward. Here the rows are processed in chunks: each chunk's logits are formed, reduced to its
loss, and turned straight into the gradients of the hidden states and of the weight, then freed.
Backward only scales the stored gradients. This is the idea behind Liger-Kernel's fused linear
cross-entropy, written in PyTorch so that it runs everywhere; Liger's Triton version is used on
CUDA when installed (see `linear_cross_entropy`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from lit_gpt.kernels import use_fused

IGNORE_INDEX = -100


def _chunk_loss_and_grad(h, weight, targets, n_valid, ignore_index: int, want_grad: bool):
    logits = (h @ weight.t()).float()  # (n, V), fp32 for a stable log-softmax
    valid = targets != ignore_index
    safe_targets = targets.clamp(min=0).unsqueeze(1)
    lse = torch.logsumexp(logits, dim=-1)
    target_logit = logits.gather(1, safe_targets).squeeze(1)
    loss_sum = ((lse - target_logit) * valid).sum()
    if not want_grad:
        return loss_sum, None, None
    # d(mean CE)/d(logits) = (softmax - onehot) / n_valid, zero on ignored rows.
    grad_logits = torch.softmax(logits, dim=-1)
    grad_logits.scatter_add_(1, safe_targets, torch.full_like(target_logit, -1.0).unsqueeze(1))
    grad_logits *= (valid.float() / n_valid).unsqueeze(1)
    grad_logits = grad_logits.to(h.dtype)
    return loss_sum, grad_logits @ weight, grad_logits.t() @ h


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Loss in forward, gradients computed chunk by chunk in forward too; backward only scales."""

    @staticmethod
    def forward(ctx, h, weight, targets, ignore_index, chunk_size, compute_dtype, want_h, want_w):
        h_c, w_c = h.to(compute_dtype), weight.to(compute_dtype)
        n_valid = (targets != ignore_index).sum().clamp(min=1).float()
        grad_h = torch.empty_like(h_c) if want_h else None
        grad_w = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if want_w else None
        total = torch.zeros((), dtype=torch.float32, device=h.device)
        for start in range(0, h_c.size(0), chunk_size):
            stop = min(start + chunk_size, h_c.size(0))
            loss_sum, g_h, g_w = _chunk_loss_and_grad(
                h_c[start:stop], w_c, targets[start:stop], n_valid, ignore_index, want_h or want_w
            )
            total += loss_sum
            if want_h:
                grad_h[start:stop] = g_h
            if want_w:
                grad_w += g_w.float()
        empty = torch.empty(0, device=h.device)
        ctx.save_for_backward(
            grad_h.to(h.dtype) if want_h else empty,
            grad_w.to(weight.dtype) if want_w else empty,
        )
        ctx.want = (want_h, want_w)
        return total / n_valid

    @staticmethod
    def backward(ctx, grad_output):
        grad_h, grad_w = ctx.saved_tensors
        want_h, want_w = ctx.want
        return (
            grad_h * grad_output.to(grad_h.dtype) if want_h else None,
            grad_w * grad_output.to(grad_w.dtype) if want_w else None,
            None, None, None, None, None, None,
        )


def chunked_linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    chunk_size: int = 4096,
) -> torch.Tensor:
    """Mean cross-entropy of `hidden @ weight.T` against `targets`, over non-ignored targets.

    hidden: (..., d), weight: (V, d), targets: (...). At most `chunk_size` rows of logits exist at
    once. Under autocast the matmuls run in the autocast dtype, as they would for an nn.Linear.
    """
    h = hidden.reshape(-1, hidden.size(-1))
    t = targets.reshape(-1)
    grad_on = torch.is_grad_enabled()
    device_type = h.device.type
    compute_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else h.dtype
    return _ChunkedLinearCrossEntropy.apply(
        h, weight, t, ignore_index, chunk_size, compute_dtype, grad_on and h.requires_grad, grad_on and weight.requires_grad
    )


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = IGNORE_INDEX,
    chunk_size: int = 4096,
    fused: bool = True,
) -> torch.Tensor:
    """The training loss: Liger's fused linear cross-entropy on CUDA when installed, else chunked."""
    if use_fused(hidden, fused) and torch.is_grad_enabled():
        from liger_kernel.ops.fused_linear_cross_entropy import LigerFusedLinearCrossEntropyFunction

        h = hidden.reshape(-1, hidden.size(-1))
        if torch.is_autocast_enabled(h.device.type):
            h = h.to(torch.get_autocast_dtype(h.device.type))
        out = LigerFusedLinearCrossEntropyFunction.apply(h, weight.to(h.dtype), targets.reshape(-1), None, None, ignore_index)
        return out[0] if isinstance(out, tuple) else out
    return chunked_linear_cross_entropy(hidden, weight, targets, ignore_index, chunk_size)


def cross_entropy_reference(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = IGNORE_INDEX) -> torch.Tensor:
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1), ignore_index=ignore_index)
