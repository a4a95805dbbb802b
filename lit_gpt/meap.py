"""MEAP masking: which input positions become `[MASK]`, and the collate step that applies it.

MEAP trains with ordinary next-token prediction on inputs in which `floor(mask_ratio * T)`
positions have been replaced by the mask id; the targets are left alone. With mask_ratio 0 the
inputs pass through unchanged, so the NTP baseline runs exactly the same code and data order.

Two schemes choose the positions (`MASK_SCHEMES`):

- `per_sequence` (the default): each sequence gets its own positions among all T inputs, drawn
  from a `torch.Generator` seeded from (seed, step, micro-step, rank) instead of a global RNG, so
  a mask depends only on where its sequence sits in the run: it is reproducible, differs across
  sequences, steps and ranks, and is the same after a resume and for any number of processes.
- `upstream`: the upstream MEAP code's scheme, reproduced exactly (`upstream_mask_positions`).
  One set of positions per optimizer step, shared by every sequence, micro batch and process.
"""

from __future__ import annotations

import hashlib
import math
import random
import struct
from dataclasses import dataclass
from typing import Optional, Sequence, Union

import torch


MASK_SCHEMES = ("per_sequence", "upstream")
# The upstream code reseeds Python's `random` with 50 + step % 51 before drawing.
UPSTREAM_SEED_OFFSET = 50
UPSTREAM_SEED_CYCLE = 51


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
) -> torch.Tensor:
    """Indices of the positions to mask, shape (batch_size, n), on the generator's device.

    span == 1: n = floor(mask_ratio * length) distinct positions per row, a uniform random subset.
    span > 1: k = round(floor(mask_ratio * length) / span) non-overlapping runs of `span` positions
    (at least one run when any position is due), n = k * span; runs may touch each other.
    Every row is drawn independently; any position 0..length-1 can be chosen.
    """
    check_mask_ratio(mask_ratio)
    if span < 1:
        raise ValueError(f"mask span must be >= 1, got {span}")
    device = generator.device if generator is not None else torch.device("cpu")
    n = num_masked(mask_ratio, length)
    span = min(span, length)
    if n == 0:
        return torch.empty(batch_size, 0, dtype=torch.long, device=device)
    if span == 1:
        # The k largest of i.i.d. uniform keys form a uniformly random k-subset.
        noise = torch.rand(batch_size, length, generator=generator, device=device)
        positions = noise.topk(n, dim=1).indices  # (B, n)
    else:
        runs = max(1, round(n / span))
        runs = min(runs, length // span)
        # Choosing `runs` distinct slots among length - runs*(span-1), sorted, then shifting the
        # i-th slot right by i*(span-1) gives non-overlapping runs with every layout equally likely.
        slots = length - runs * (span - 1)
        noise = torch.rand(batch_size, slots, generator=generator, device=device)
        starts = noise.topk(runs, dim=1).indices.sort(dim=1).values
        starts = starts + torch.arange(runs, device=device) * (span - 1)  # (B, runs)
        positions = (starts.unsqueeze(-1) + torch.arange(span, device=device)).flatten(1)  # (B, runs*span)
    return positions


def mask_inputs(
    input_ids: torch.Tensor,
    mask_ratio: float,
    mask_token_id: Optional[int],
    generator: Optional[torch.Generator] = None,
    span: int = 1,
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
        positions = mask_positions(ids.size(0), ids.size(1), mask_ratio, generator, span)
        out.scatter_(1, positions.to(out.device), mask_token_id)
    return out.squeeze(0) if squeeze else out


def upstream_mask_positions(length: int, mask_ratio: float, step: int) -> list[int]:
    """The positions the upstream MEAP code masks at optimizer step `step` (0-based, the count of
    optimizer steps already taken, which is its `state["step_count"]`).

    Upstream, before every micro batch: `random.seed(50 + step % 51)`, then
    `random.sample(range(0, T - 1), max(1, int(T * mask_ratio)))`. A private `random.Random` with
    the same seed yields the same numbers without disturbing the global generator. Consequences
    kept on purpose: the last input position T-1 is never masked, at least one position is
    masked whenever mask_ratio > 0, `int()` truncates float products (0.29 * 100 -> 28), and a
    run sees only 51 patterns (step s and s + 51 mask alike).
    """
    check_mask_ratio(mask_ratio)
    if length < 2:
        raise ValueError(f"the upstream mask scheme needs sequences of at least 2 tokens, got {length}")
    rng = random.Random(UPSTREAM_SEED_OFFSET + step % UPSTREAM_SEED_CYCLE)
    return rng.sample(range(0, length - 1), max(1, int(length * mask_ratio)))


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
    `mask_ratio=0` gives the plain NTP batch under either scheme.
    scheme `per_sequence`: positions per sequence from (seed, step, micro_step, rank, world_size).
    scheme `upstream`: `upstream_mask_positions(T, mask_ratio, step)` for every row; seed,
    micro_step, rank and world_size are not used. Single tokens only (span 1).
    """

    mask_ratio: float
    mask_token_id: Optional[int]
    seed: int = 0
    span: int = 1
    scheme: str = "per_sequence"

    def __post_init__(self) -> None:
        check_mask_ratio(self.mask_ratio)
        if self.mask_ratio > 0 and self.mask_token_id is None:
            raise ValueError("mask_ratio > 0 needs a mask token id")
        if self.scheme not in MASK_SCHEMES:
            raise ValueError(f"mask scheme must be one of {', '.join(MASK_SCHEMES)}, got {self.scheme!r}")
        if self.scheme == "upstream" and self.span != 1:
            raise ValueError(f"the upstream mask scheme masks single tokens; mask span {self.span} needs per_sequence")

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
        if self.scheme == "upstream":
            inputs = batch[:, :-1].clone()
            if self.mask_ratio > 0:
                inputs[:, upstream_mask_positions(inputs.size(1), self.mask_ratio, step)] = self.mask_token_id
            return inputs, targets
        generator = None
        if self.mask_ratio > 0:
            generator = torch.Generator().manual_seed(mask_seed(self.seed, step, micro_step, rank, world_size))
        inputs = mask_inputs(batch[:, :-1], self.mask_ratio, self.mask_token_id, generator, self.span)
        return inputs, targets
