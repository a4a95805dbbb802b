"""One optimizer step: forward/backward over the micro batches, clipping, update.

This is the function the performance work measures; it stays free of host syncs (no `.item()`,
no printing), so the CPU can queue the next step while the device works.
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import torch


def clip_grad_norm(parameters, max_norm: float) -> torch.Tensor:
    """Clips gradients to a total norm of `max_norm`; returns the norm before clipping, a plain tensor.

    Under FSDP2 the gradients are shards (DTensors): their norm is reduced over the processes
    once, here, and that one value is both used to clip and returned for logging (as torchtitan).
    Finiteness is not checked (it would sync with the host); the loop checks it at log time.
    """
    from torch.distributed.tensor import DTensor

    parameters = list(parameters)
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.nn.utils.get_total_norm(grads, foreach=True)
    if isinstance(norm, DTensor):
        norm = norm.full_tensor()
    torch.nn.utils.clip_grads_with_norm_(parameters, max_norm, norm, foreach=True)
    return norm


class StepResult(NamedTuple):
    loss: torch.Tensor  # mean training loss of this process's micro batches, 0-dim, on the device
    grad_norm: Optional[torch.Tensor]  # total gradient norm before clipping (over all processes); None without clipping


def train_step(
    fabric,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
    grad_clip: float = 1.0,
) -> StepResult:
    """Runs one optimizer step with gradient accumulation.

    fabric: the `lightning.Fabric` the model and optimizer were set up with.
    model: the set-up GPT; `model(inputs, targets=targets)` returns the mean loss.
    micro_batches: (inputs, targets) pairs of shape (micro_batch_size, T), already on the device.
    grad_clip: max gradient norm (0 disables clipping).

    Gradients are averaged over the micro batches (each loss is divided by their number) and, by
    the strategy, over processes; they are synchronised only in the last micro batch's backward.
    The learning rate must already be set in the optimizer's param groups.
    """
    n = len(micro_batches)
    total = None
    for i, (inputs, targets) in enumerate(micro_batches):
        with fabric.no_backward_sync(model, enabled=i < n - 1):
            loss = model(inputs, targets=targets)
            fabric.backward(loss / n)
        total = loss.detach() if total is None else total + loss.detach()
    grad_norm = None
    if grad_clip > 0:
        fabric.strategy.precision.unscale_gradients(optimizer)  # 16-mixed's loss scale; a no-op otherwise
        grad_norm = clip_grad_norm(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return StepResult(total / n, grad_norm)
