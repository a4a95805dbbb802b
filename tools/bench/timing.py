"""Clocks and the round-robin schedule.

The device is timed with CUDA events (the host synchronises once, after everything is queued),
the CPU with the wall clock. Variants are timed in rounds, each variant taking its turn in every
round (A B C, A B C, ...) after all of them were warmed up, so that no variant gets the card
fresh or hot, before or after compilation, because of where it stands in `--variants`.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Hashable, Mapping, Sequence

import torch


def time_calls(fn: Callable[[int], Any], device: torch.device, warmup: int, repeats: int) -> list[float]:
    """Seconds per call of fn(i) for i in range(repeats), after `warmup` untimed calls."""
    for i in range(warmup):
        fn(i)
    timer = DeviceTimer(device)
    for i in range(repeats):
        with timer.measure(i):
            fn(i)
    times = timer.seconds()
    return [times[i] for i in range(repeats)]


class DeviceTimer:
    """Times labelled blocks: CUDA events on a GPU (read after one sync), wall clock on the CPU."""

    def __init__(self, device: torch.device, clock: Callable[[], float] = time.perf_counter) -> None:
        self.cuda = device.type == "cuda"
        self.device = device
        self.clock = clock
        self._marks: list[tuple[Hashable, Any, Any]] = []

    def measure(self, label: Hashable) -> "_Block":
        return _Block(self, label)

    def seconds(self) -> dict[Hashable, float]:
        if self.cuda:
            torch.cuda.synchronize(self.device)
            return {label: start.elapsed_time(end) / 1e3 for label, start, end in self._marks}
        return {label: end - start for label, start, end in self._marks}


class _Block:
    def __init__(self, timer: DeviceTimer, label: Hashable) -> None:
        self.timer, self.label = timer, label

    def __enter__(self):
        if self.timer.cuda:
            self.start = torch.cuda.Event(enable_timing=True)
            self.start.record()
        else:
            self.start = self.timer.clock()

    def __exit__(self, *exc) -> None:
        if self.timer.cuda:
            end = torch.cuda.Event(enable_timing=True)
            end.record()
        else:
            end = self.timer.clock()
        self.timer._marks.append((self.label, self.start, end))


def round_robin(turns: Sequence[Hashable], rounds: int) -> list[tuple[int, Hashable]]:
    """[(round, turn), ...]: every turn once per round, in the given order, `rounds` times."""
    return [(r, turn) for r in range(rounds) for turn in turns]


def time_rounds(
    turns: Mapping[Hashable, Callable[[int], Any]],
    rounds: int,
    warmup: int,
    device: torch.device,
    clock: Callable[[], float] = time.perf_counter,
) -> dict[Hashable, list[float]]:
    """Seconds of each turn's call in every round: {turn: [round 0, round 1, ...]}.

    Warm-up is round-robin too (`warmup` untimed rounds: compilation, autotuning, allocator
    growth happen here for every turn before any is timed). `turns[name](i)` runs one step;
    `i` counts that turn's calls. On a GPU the host synchronises only after the last round:
    a sync between rounds would hand the first turn of every round an idle queue.
    """
    calls = {name: 0 for name in turns}

    def call(name):
        turns[name](calls[name])
        calls[name] += 1

    for _, name in round_robin(list(turns), warmup):
        call(name)
    timer = DeviceTimer(device, clock)
    for r in range(rounds):
        for _, name in round_robin(list(turns), 1):
            with timer.measure((r, name)):
                call(name)
    times = timer.seconds()
    return {name: [times[(r, name)] for r in range(rounds)] for name in turns}
