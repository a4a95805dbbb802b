"""Weighted mixing of several streams, addressed by position so that it resumes exactly."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
import torch

from lit_gpt.data.reader import PackedStream
from lit_gpt.errors import UserError
from lit_gpt.data.stream import ResumableStream


class MixedStream(ResumableStream):
    """Mixes several streams by weight, addressed by position like `PackedStream`.

    `sample_at(p)` costs the same at position 10 as at 10**12: it draws at most one window of
    choices, never the positions before it. How position p finds its block:

    - Positions are cut into windows of `WINDOW` positions. How many positions of each window go to
      each dataset is fixed by the weights (`apportion`, below); which ones is a permutation drawn
      from (seed, rank, window). So each dataset's share of any prefix of the stream is exact to
      within a block or two per dataset, not only in expectation, and the order inside a window is
      random.
    - `apportion(n)`: of the first n positions, dataset 0 gets floor(n * r_0), dataset 1
      floor(rest * r_1) of the rest, ..., the last dataset what is left, with r_i = w_i / (w_i + ...
      + w_last). Each count is non-decreasing in n and they sum to n, so the per-window counts
      (differences of consecutive window starts) are never negative.
    - The block of position p (window k, offset o), when it goes to dataset i, is that dataset's
      position apportion(k * WINDOW)[i] + (the positions of window k before o that go to i).

    So the choices and the sub-positions are a pure function of (seed, rank, weights, p): the mix
    resumes exactly. Without `wrap`, a pass ends at the first position whose dataset has no block
    left (sample_at returns None from there on).

    The datasets may be given new weights on resume: each continues from the position it had
    reached, and the positions after the resume point follow the new weights.
    """

    KIND = "CombinedDataset"
    WINDOW = 4096
    SCHEME = "window-apportioned"  # recorded in the state: how choices are made
    _SEED_DOMAIN = 0x4D4958  # keeps the mix's generators apart from PackedStream's (seed, epoch, window)

    def __init__(self, datasets: Sequence[PackedStream], weights: Sequence[float], seed: int = 12345,
                 names: Optional[Sequence[str]] = None):
        super().__init__()
        # Checked again here (the trainer's settings already are): the class is public API.
        if not datasets or len(datasets) != len(weights):
            raise ValueError(f"need one weight per dataset, got {len(datasets)} datasets and {len(weights)} weights")
        if names is not None and len(names) != len(datasets):
            raise ValueError(f"need one name per dataset, got {len(names)} names for {len(datasets)} datasets")
        weights = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(weights)) or not np.all(weights >= 0) or weights.sum() <= 0:
            raise UserError(f"dataset weights must be non-negative with a positive sum, got {weights.tolist()}")
        if len({(d.num_processes, d.process_rank) for d in datasets}) != 1:
            raise ValueError("the combined datasets must share num_processes and process_rank")
        self.datasets = list(datasets)
        self.names = list(names) if names is not None else None
        self.weights = weights / weights.sum()
        self.seed = seed
        self.num_processes, self.process_rank = datasets[0].num_processes, datasets[0].process_rank
        # r_i = w_i / (w_i + ... + w_last); a suffix of zero weights takes nothing.
        suffix = np.cumsum(self.weights[::-1])[::-1]
        self._ratios = [float(w / s) if s > 0 else 0.0 for w, s in zip(self.weights[:-1], suffix[:-1])]
        # Blocks each dataset holds: one pass without wrap, endless with it.
        self._ends = np.array([np.inf if d.wrap else d.rank_blocks_per_epoch for d in self.datasets])
        self._finite = not all(d.wrap for d in self.datasets)
        # A resume point with other weights than the ones the datasets' positions were reached with:
        # from `_base` on, dataset i's position is shifted by `_shift[i]`.
        self._base = 0
        self._shift = np.zeros(len(self.datasets), dtype=np.int64)
        self._windows: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    # --- where a position's block comes from
    def apportion(self, n: int) -> np.ndarray:
        """How many of the first n positions go to each dataset (non-decreasing in n, summing to n)."""
        counts = np.zeros(len(self.datasets), dtype=np.int64)
        rest = n
        for i, ratio in enumerate(self._ratios):
            counts[i] = min(rest, int(rest * ratio))  # floor; min guards ratio's last-bit rounding
            rest -= int(counts[i])
        counts[-1] = rest
        return counts

    def _window(self, window: int) -> tuple[np.ndarray, np.ndarray]:
        """(dataset of each offset, each dataset's position at the window's start)."""
        cached = self._windows.get(window)
        if cached is not None:
            self._windows.move_to_end(window)
            return cached
        start = self.apportion(window * self.WINDOW)
        counts = self.apportion((window + 1) * self.WINDOW) - start
        choices = np.repeat(np.arange(len(self.datasets)), counts)
        rng = np.random.default_rng([self.seed, self.process_rank, window, self._SEED_DOMAIN])
        self._windows[window] = cached = (rng.permutation(choices), start)
        if len(self._windows) > 4:  # a micro batch may straddle two windows
            self._windows.popitem(last=False)
        return cached

    def positions_at(self, position: int) -> np.ndarray:
        """Each dataset's position (blocks taken from it) when the mix is at `position`."""
        window, offset = divmod(position, self.WINDOW)
        choices, start = self._window(window)
        counts = start + np.bincount(choices[:offset], minlength=len(self.datasets))
        return counts + self._shift if position >= self._base else counts

    def locate(self, position: int) -> tuple[int, int]:
        """(dataset index, position in that dataset) of the mix's sample at `position`."""
        window, offset = divmod(position, self.WINDOW)
        choice = int(self._window(window)[0][offset])
        return choice, int(self.positions_at(position)[choice])

    def sample_at(self, position: int) -> Optional[torch.Tensor]:
        """The mix's sample at `position`, or None past the end of a finite mix."""
        if self._finite and np.any(self.positions_at(position + 1) > self._ends):
            return None  # this position or an earlier one chose a dataset that had run out
        choice, sub = self.locate(position)
        return self.datasets[choice].sample_at(sub)

    def __iter__(self):
        if self.consumed < self._base:  # a new pass from 0: the resume point belongs to the last one
            self._base, self._shift = 0, np.zeros_like(self._shift)
        return super().__iter__()

    # --- resume
    def _identity(self) -> dict:
        identity = {"seed": self.seed, "num_processes": self.num_processes, "n_datasets": len(self.datasets)}
        if self.names is not None:
            identity["sources"] = self.names
        return identity

    def state_dict(self, consumed: Optional[int] = None) -> dict:
        state = super().state_dict(consumed)
        positions = self.positions_at(state["consumed"])
        datasets = [dataset.state_dict(int(p)) for dataset, p in zip(self.datasets, positions)]
        return {**state, "scheme": self.SCHEME, "weights": self.weights.tolist(), "datasets": datasets}

    def load_state_dict(self, state: dict) -> None:
        self.check_state(state)
        positions = []
        for dataset, sub_state in zip(self.datasets, state["datasets"]):
            dataset.check_state(sub_state)
            positions.append(int(sub_state["consumed"]))
        if state.get("scheme") != self.SCHEME:
            warnings.warn(
                "the data mix was saved by an earlier version that chose datasets differently: each dataset "
                "continues from its saved position, but the order of datasets from here on differs",
                stacklevel=2,
            )
        elif not np.allclose(state["weights"], self.weights):
            warnings.warn(
                f"resuming the data mix with new weights {self.weights.tolist()} (saved: {state['weights']})",
                stacklevel=2,
            )
        consumed = int(state["consumed"])
        self._base, self._shift = 0, np.zeros_like(self._shift)
        self._shift = np.asarray(positions, dtype=np.int64) - self.positions_at(consumed)
        self._base = self.consumed = consumed
