"""Cross-entropy of the output projection without materialising the full logits.

The (B·T × vocab) fp32 logits of a 4096-token, 32k-vocabulary micro batch of 8 take 4 GiB, and the
autograd graph of a plain `lm_head` + `cross_entropy` keeps them (and their softmax) alive until
backward. Here the rows are processed in chunks: each chunk's logits are formed, reduced to its
loss, and turned straight into the gradients of the hidden states and of the weight, then freed.
Backward only scales the stored gradients. This is the idea behind Liger-Kernel's fused linear
cross-entropy, written in PyTorch so that it runs everywhere; Liger's Triton version is used on
CUDA when installed (see `linear_cross_entropy`).

Neither path synchronises with the host except Liger's, which reads the number of non-ignored
targets with `.item()` once per call (liger-kernel 0.8.5, `ops/fused_linear_cross_entropy.py`).
"""

from __future__ import annotations

import functools
import inspect

import torch

from lit_gpt.kernels import importable, use_fused

IGNORE_INDEX = -100


def _chunk_loss_and_grad(h, weight, targets, n_valid, ignore_index: int, want_grad: bool):
    """Summed loss of one chunk of rows and, if wanted, d(mean loss)/d(logits) in h's dtype."""
    logits = h @ weight.t()  # (n, V)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # >= fp32 for a stable log-softmax
    valid = targets != ignore_index
    safe_targets = targets.clamp(min=0).unsqueeze(1)  # ignored rows gather a dummy column
    lse = torch.logsumexp(logits, dim=-1)
    target_logit = logits.gather(1, safe_targets).squeeze(1)
    loss_sum = ((lse - target_logit) * valid).sum()
    if not want_grad:
        return loss_sum, None
    # d(mean CE)/d(logits) = (softmax - onehot) / n_valid, zero on ignored rows. Built in place
    # in the fp32 logits: no separate softmax or gradient buffer of the chunk's size.
    grad_logits = logits.sub_(lse.unsqueeze(1)).exp_()
    grad_logits.scatter_add_(1, safe_targets, torch.full_like(target_logit, -1.0).unsqueeze(1))
    grad_logits.mul_((valid.to(logits.dtype) / n_valid).unsqueeze(1))
    return loss_sum, grad_logits.to(h.dtype)


class _ChunkedLinearCrossEntropy(torch.autograd.Function):
    """Loss in forward, gradients computed chunk by chunk in forward too; backward only scales."""

    @staticmethod
    def forward(ctx, h, weight, targets, ignore_index, chunk_size, compute_dtype, want_h, want_w):
        h_c, w_c = h.to(compute_dtype), weight.to(compute_dtype)
        # A device tensor, never `.item()`: no host sync inside the training step.
        acc_dtype = torch.promote_types(compute_dtype, torch.float32)
        n_valid = (targets != ignore_index).sum().clamp(min=1).to(acc_dtype)
        grad_h = torch.empty_like(h_c) if want_h else None
        # fp32 accumulation across chunks: each chunk's bf16 product is rounded once, as a plain
        # nn.Linear's weight gradient would be, and the sum of chunks loses nothing more.
        grad_w = torch.zeros(weight.shape, dtype=acc_dtype, device=weight.device) if want_w else None
        total = torch.zeros((), dtype=acc_dtype, device=h.device)
        for start in range(0, h_c.size(0), chunk_size):
            stop = min(start + chunk_size, h_c.size(0))
            h_chunk = h_c[start:stop]
            loss_sum, grad_logits = _chunk_loss_and_grad(
                h_chunk, w_c, targets[start:stop], n_valid, ignore_index, want_h or want_w
            )
            total += loss_sum
            if want_h:
                torch.mm(grad_logits, w_c, out=grad_h[start:stop])
            if want_w:
                grad_w.add_(grad_logits.t() @ h_chunk)
        empty = torch.empty(0, device=h.device)
        ctx.save_for_backward(
            grad_h if want_h else empty,
            grad_w.to(weight.dtype) if want_w else empty,
        )
        ctx.want = (want_h, want_w)
        return total / n_valid

    @staticmethod
    def backward(ctx, grad_output):
        grad_h, grad_w = ctx.saved_tensors
        want_h, want_w = ctx.want
        # Autograd casts each gradient to its input's dtype (e.g. bf16 grad_h -> fp32 h).
        return (
            grad_h * grad_output.to(grad_h.dtype) if want_h else None,
            grad_w * grad_output.to(grad_w.dtype) if want_w else None,
            None, None, None, None, None, None,
        )


def chunked_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                                 ignore_index: int = IGNORE_INDEX, chunk_size: int = 4096) -> torch.Tensor:
    """Mean cross-entropy of `hidden @ weight.T` against `targets`, over non-ignored targets.

    hidden: (..., d), weight: (V, d), targets: (...). At most `chunk_size` rows of logits exist at
    once. Under autocast the matmuls run in the autocast dtype, as they would for an nn.Linear.
    With every target ignored the loss is 0 (not NaN) and so are the gradients. Under
    `torch.no_grad()` (or when neither input requires grad) only the loss is computed.
    """
    if chunk_size <= 0:
        raise ValueError(f"chunk_size must be positive, got {chunk_size}")
    h = hidden.reshape(-1, hidden.size(-1))
    t = targets.reshape(-1)
    grad_on = torch.is_grad_enabled()
    device_type = h.device.type
    compute_dtype = torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else h.dtype
    return _ChunkedLinearCrossEntropy.apply(
        h, weight, t, ignore_index, chunk_size, compute_dtype, grad_on and h.requires_grad, grad_on and weight.requires_grad
    )


@functools.lru_cache(maxsize=None)
def _liger_takes_accum_dtype() -> bool:
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    return "accum_dtype" in inspect.signature(liger_fused_linear_cross_entropy).parameters


def liger_linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """Liger-Kernel's fused linear cross-entropy (CUDA, or CPU inside `kernels.liger_on_cpu()`),
    mean over non-ignored targets."""
    from liger_kernel.transformers.functional import liger_fused_linear_cross_entropy

    h = hidden.reshape(-1, hidden.size(-1))
    if torch.is_autocast_enabled(h.device.type):
        # What an autocast nn.Linear would see; also halves the gradient Liger keeps for h.
        h = h.to(torch.get_autocast_dtype(h.device.type))
    # The weight is passed as is: under bf16 autocast Liger's matmuls cast it, and its gradient
    # is accumulated over chunks in the weight's fp32. With bf16 weights (bf16-true) ask for
    # fp32 accumulation explicitly where the installed version can (liger-kernel >= 0.6.2).
    extra = {"accum_dtype": torch.float32} if _liger_takes_accum_dtype() else {}
    return liger_fused_linear_cross_entropy(h, weight, targets.reshape(-1), ignore_index=ignore_index, **extra)


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         ignore_index: int = IGNORE_INDEX, chunk_size: int = 4096, fused: bool = True) -> torch.Tensor:
    """The training loss: Liger's fused linear cross-entropy on CUDA when installed, else chunked.

    Liger is used only when the hidden states want a gradient; evaluation (no_grad) takes the
    chunked path, which then computes the loss alone.
    """
    # Liger computes the weight's gradient only alongside the input's, hence hidden.requires_grad.
    if (
        use_fused(hidden, fused)
        and torch.is_grad_enabled()
        and hidden.requires_grad
        and importable("liger_kernel.transformers.functional")
    ):
        return liger_linear_cross_entropy(hidden, weight, targets, ignore_index)
    return chunked_linear_cross_entropy(hidden, weight, targets, ignore_index, chunk_size)
