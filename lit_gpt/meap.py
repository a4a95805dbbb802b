"""MEAP masking: which input positions become `[MASK]`, and the collate step that applies it.

MEAP trains with ordinary next-token prediction on inputs in which `floor(mask_ratio * T)`
positions have been replaced by the mask id; the targets are left alone. With mask_ratio 0 the
inputs pass through unchanged, so the NTP baseline runs exactly the same code and data order.

Masks are drawn from a `torch.Generator` seeded from (seed, step, micro-step, rank) instead of
a global RNG, so a mask depends only on where its batch sits in the run: it is reproducible,
differs across sequences, steps and ranks, and is the same after a resume.
"""

from __future__ import annotations

import hashlib
import math
import struct
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch


def check_mask_ratio(mask_ratio: float) -> None:
    if not (isinstance(mask_ratio, (int, float)) and 0.0 <= mask_ratio < 1.0):
        raise ValueError(f"mask_ratio must be in [0, 1), got {mask_ratio!r}")


def num_masked(mask_ratio: float, length: int) -> int:
    """floor(mask_ratio * length), immune to float noise such as 0.29 * 100 = 28.999999999999996."""
    return math.floor(round(mask_ratio * length, 6))


def mask_positions(
    batch_size: int,
    length: int,
    mask_ratio: float,
    generator: Optional[torch.Generator] = None,
    span: int = 1,
    shared: bool = False,
) -> torch.Tensor:
    """Indices of the positions to mask, shape (batch_size, n), on the generator's device.

    span == 1: n = floor(mask_ratio * length) distinct positions per row, a uniform random subset.
    span > 1: k = round(floor(mask_ratio * length) / span) non-overlapping runs of `span` positions
    (at least one run when any position is due), n = k * span; runs may touch each other.
    shared: one draw for the whole batch (the upstream code's behaviour), else one per row.
    """
    check_mask_ratio(mask_ratio)
    if span < 1:
        raise ValueError(f"mask span must be >= 1, got {span}")
    device = generator.device if generator is not None else torch.device("cpu")
    rows = 1 if shared else batch_size
    n = num_masked(mask_ratio, length)
    span = min(span, length)
    if n == 0:
        return torch.empty(batch_size, 0, dtype=torch.long, device=device)
    if span == 1:
        # The k largest of i.i.d. uniform keys form a uniformly random k-subset.
        noise = torch.rand(rows, length, generator=generator, device=device)
        positions = noise.topk(n, dim=1).indices  # (rows, n)
    else:
        runs = max(1, round(n / span))
        runs = min(runs, length // span)
        # Choosing `runs` distinct slots among length - runs*(span-1), sorted, then shifting the
        # i-th slot right by i*(span-1) gives non-overlapping runs with every layout equally likely.
        slots = length - runs * (span - 1)
        noise = torch.rand(rows, slots, generator=generator, device=device)
        starts = noise.topk(runs, dim=1).indices.sort(dim=1).values
        starts = starts + torch.arange(runs, device=device) * (span - 1)  # (rows, runs)
        positions = (starts.unsqueeze(-1) + torch.arange(span, device=device)).flatten(1)  # (rows, runs*span)
    return positions.expand(batch_size, -1) if shared else positions


def mask_inputs(
    input_ids: torch.Tensor,
    mask_ratio: float,
    mask_token_id: Optional[int],
    generator: Optional[torch.Generator] = None,
    span: int = 1,
    shared: bool = False,
) -> torch.Tensor:
    """A copy of `input_ids` (B, T) or (T,) with MEAP's positions replaced by `mask_token_id`.

    See `mask_positions` for which positions. `input_ids` itself is never modified. With
    mask_ratio 0 the copy equals the input and no random numbers are drawn.
    """
    check_mask_ratio(mask_ratio)
    squeeze = input_ids.dim() == 1
    ids = input_ids.unsqueeze(0) if squeeze else input_ids
    if ids.dim() != 2:
        raise ValueError(f"input_ids must have shape (B, T) or (T,), got {tuple(input_ids.shape)}")
    out = ids.clone()
    if num_masked(mask_ratio, ids.size(1)) > 0:
        if mask_token_id is None:
            raise ValueError("mask_ratio > 0 needs a mask token id")
        positions = mask_positions(ids.size(0), ids.size(1), mask_ratio, generator, span, shared)
        out.scatter_(1, positions.to(out.device), mask_token_id)
    return out.squeeze(0) if squeeze else out


def mask_seed(seed: int, step: int, micro_step: int, rank: int = 0, world_size: int = 1) -> int:
    """A 63-bit generator seed for the micro-batch (step, micro_step) of process `rank`.

    The rank enters through the micro-batch's index within the global batch,
    `micro_step * world_size + rank`: the same index the data stream uses to hand micro-batches
    to ranks, so a sequence gets the same mask whatever the number of processes. A hash (not
    Python's salted `hash`) makes neighbouring seeds unrelated.
    """
    index = micro_step * world_size + rank
    digest = hashlib.blake2b(struct.pack("<3q", seed, step, index), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


@dataclass
class MEAPCollator:
    """The collate step: (B, T+1) token blocks -> (inputs, targets), inputs masked.

    inputs = blocks[:, :-1] with MEAP's mask applied, targets = blocks[:, 1:] unchanged.
    `mask_ratio=0` gives the plain NTP batch.
    """

    mask_ratio: float
    mask_token_id: Optional[int]
    seed: int = 0
    span: int = 1
    shared_across_batch: bool = False

    def __post_init__(self) -> None:
        check_mask_ratio(self.mask_ratio)
        if self.mask_ratio > 0 and self.mask_token_id is None:
            raise ValueError("mask_ratio > 0 needs a mask token id")

    def __call__(
        self,
        blocks: Union[torch.Tensor, Sequence[torch.Tensor]],
        step: int,
        micro_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch = blocks if isinstance(blocks, torch.Tensor) else torch.stack(list(blocks))
        batch = batch.long()
        targets = batch[:, 1:].contiguous()
        generator = None
        if self.mask_ratio > 0:
            generator = torch.Generator().manual_seed(mask_seed(self.seed, step, micro_step, rank, world_size))
        inputs = mask_inputs(
            batch[:, :-1], self.mask_ratio, self.mask_token_id, generator, self.span, self.shared_across_batch
        )
        return inputs, targets
