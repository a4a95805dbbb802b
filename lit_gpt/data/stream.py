"""Streams of samples addressed by position: iteration split over dataloader workers, and the
state a resume needs (the count of samples consumed, checked against what the stream is)."""

from __future__ import annotations

import warnings
from typing import Iterator, Optional

import torch
from torch.utils.data import IterableDataset, get_worker_info

from lit_gpt.errors import UserError

STATE_VERSION = 1


class ResumableStream(IterableDataset):
    """A per-rank stream of samples addressed by position, split across dataloader workers.

    Position n is the n-th sample this rank's trainer receives. Worker w of W takes the batches
    k = w, w + W, ... (counted from where the iteration starts), each `batch_size` consecutive
    positions: that is exactly the order in which a DataLoader hands the workers' batches to the
    trainer, so the trainer sees the same sequence with any number of workers, and `consumed`
    (where the next iteration starts) is all a resume needs.
    """

    def __init__(self, batch_size: Optional[int] = None):
        self.batch_size = batch_size
        self.consumed = 0

    # --- what a concrete stream provides
    def stream_length(self) -> Optional[int]:
        """Samples this rank gets in one pass, or None when the stream is endless (or unknown)."""
        raise NotImplementedError

    def sample_at(self, position: int) -> Optional[torch.Tensor]:
        """This rank's sample at `position`, or None past the end of the stream."""
        raise NotImplementedError

    def _samples(self, positions: Iterator[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Yields (position, sample) for increasing positions, stopping when the stream ends."""
        for position in positions:
            sample = self.sample_at(position)
            if sample is None:
                return
            yield position, sample

    # --- iteration
    def __iter__(self) -> Iterator[torch.Tensor]:
        worker = get_worker_info()
        num_workers, worker_id = (1, 0) if worker is None else (worker.num_workers, worker.id)
        granularity = self.batch_size or 1
        if num_workers > 1 and self.batch_size is None:
            warnings.warn(
                f"{type(self).__name__}: batch_size is not set, so {num_workers} dataloader workers take "
                "alternate samples: every block is still read once per epoch, but the order differs from "
                "num_workers=0 and a resume cannot know the workers' positions; use lit_gpt.data.StatefulLoader",
                stacklevel=2,
            )
        positions = _worker_positions(self.consumed, self.stream_length(), granularity, num_workers, worker_id)
        return self._iterate(positions, in_process=worker is None)

    def _iterate(self, positions: Iterator[int], in_process: bool) -> Iterator[torch.Tensor]:
        for position, sample in self._samples(positions):
            if in_process:  # a worker's copy of `consumed` is never seen; StatefulLoader counts instead
                self.consumed = position + 1
            yield sample
        if in_process:
            self.consumed = 0  # a finished pass: the next iteration starts a new one


def _worker_positions(
    start: int, length: Optional[int], granularity: int, num_workers: int, worker_id: int
) -> Iterator[int]:
    batch = worker_id
    while True:
        lo = start + batch * granularity
        hi = lo + granularity
        if length is not None:
            if lo >= length:
                return
            hi = min(hi, length)
        yield from range(lo, hi)
        batch += num_workers


def check_state(state: dict, kind: str, identity: dict) -> None:
    if not isinstance(state, dict) or state.get("kind") != kind:
        found = state.get("kind") if isinstance(state, dict) else type(state).__name__
        raise UserError(f"cannot resume the data stream: the saved state is for {found!r}, this run reads a {kind}")
    if state.get("version") != STATE_VERSION:
        raise UserError(f"cannot resume the data stream: saved state version {state.get('version')}, expected {STATE_VERSION}")
    for key, value in identity.items():
        if state.get(key) != value:
            raise UserError(
                f"cannot resume the data stream: it was saved with {key}={state.get(key)!r}, this run has {key}={value!r}"
            )
