"""The learning-rate schedule: linear warmup, then cosine decay to min_lr (TinyLlama's)."""

from __future__ import annotations

import math


def get_lr(step: int, *, max_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """Learning rate of 0-based optimizer step `step`: the first warmup step already has max_lr / warmup_steps,
    not 0; the cosine reaches min_lr at the last step."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 1:
        return max_lr
    progress = min(1.0, (step - warmup_steps) / (decay_steps - 1))
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (max_lr - min_lr)


def warmup_steps_for(total_steps: int, warmup_fraction: float, warmup_steps: int | None = None) -> int:
    if warmup_steps is not None:
        return min(warmup_steps, total_steps)
    return int(total_steps * warmup_fraction)
