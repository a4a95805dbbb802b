"""Packed token chunks in the lit-gpt / TinyLlama `LITPKDS` format: writing, validating, reading.

A chunk file is a 24-byte little-endian header (7 bytes magic `LITPKDS`, uint64 version 1, uint8
dtype code, uint64 chunk_size) followed by exactly chunk_size tokens. Files written by upstream
lit-gpt / TinyLlama read unchanged.

The reader sees the data as one stream of blocks (block_size + 1 tokens) per rank. Where each
block sits in that stream is a pure function of (seed, epoch, rank): nothing depends on how many
dataloader workers read it or on what was read before. So a resumed reader needs only the count
of samples its rank has consumed, and jumps there without touching the blocks before it.
Iterate it (through `lit_gpt.data.StatefulLoader` when dataloader workers read it) or read it by
position with `sample_at`.
"""

from __future__ import annotations

import os
import struct
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lit_gpt.cli import UserError

MAGIC = b"LITPKDS"
VERSION = 1
HEADER = struct.Struct("<7sQBQ")  # magic, version, dtype code, chunk_size
HEADER_SIZE = HEADER.size  # 24
DTYPES = {
    1: np.uint8,
    2: np.int8,
    3: np.int16,
    4: np.int32,
    5: np.int64,
    6: np.float32,
    7: np.float64,
    8: np.uint16,
}
STATE_VERSION = 1

PathLike = Union[str, Path]


class PackedDatasetError(UserError):
    """A chunk file or a data folder that cannot be read; the message names it."""


def dtype_code(dtype) -> int:
    np_dtype = np.dtype(dtype)
    for code, candidate in DTYPES.items():
        if np.dtype(candidate) == np_dtype:
            return code
    raise ValueError(f"dtype {np_dtype} has no code in the packed format")


def token_dtype(vocab_size: int) -> type:
    """uint16 below 65500 tokens (the upstream rule, which leaves room for added tokens), else int32."""
    return np.uint16 if vocab_size < 65500 else np.int32


@dataclass(frozen=True)
class ChunkHeader:
    path: str
    dtype: type
    chunk_size: int


def read_header(path: PathLike) -> ChunkHeader:
    """Reads and checks a chunk file's header and its size; errors name the file."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_SIZE)
    except OSError as err:
        raise PackedDatasetError(f"cannot read chunk file {path}: {err.strerror or err}") from None
    if len(raw) < HEADER_SIZE:
        raise PackedDatasetError(f"{path} is not a packed chunk file: {size} bytes, shorter than the {HEADER_SIZE}-byte header")
    magic, version, code, chunk_size = HEADER.unpack(raw)
    if magic != MAGIC:
        raise PackedDatasetError(f"{path} is not a packed chunk file: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise PackedDatasetError(f"{path} has format version {version}; only version {VERSION} is known")
    if code not in DTYPES:
        raise PackedDatasetError(f"{path} has unknown dtype code {code}; known codes are {sorted(DTYPES)}")
    dtype = DTYPES[code]
    expected = HEADER_SIZE + chunk_size * np.dtype(dtype).itemsize
    if size != expected:
        raise PackedDatasetError(
            f"{path} is {size} bytes but its header announces {chunk_size} {np.dtype(dtype).name} tokens "
            f"({expected} bytes): truncated or corrupt"
        )
    return ChunkHeader(str(path), dtype, chunk_size)


def write_chunk(path: PathLike, tokens: np.ndarray) -> Path:
    """Writes one chunk file under a temporary name and renames it once complete.

    The temporary name starts with a dot, so a crash leaves nothing that a prefix glob picks up
    and nothing that looks whole.
    """
    path = Path(path)
    tokens = np.ascontiguousarray(tokens)
    header = HEADER.pack(MAGIC, VERSION, dtype_code(tokens.dtype), tokens.size)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(header)
            f.write(tokens.tobytes())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class PackedDatasetBuilder:
    """Fills chunks of `chunk_size` tokens and writes each as `{prefix}_{index:010d}.bin`.

    `finish()` pads the last chunk with `sep_token` (the EOS that separates documents) and writes it.
    """

    def __init__(self, out_dir: PathLike, prefix: str, chunk_size: int, sep_token: int, dtype=np.uint16):
        if chunk_size <= 0:
            raise ValueError(f"chunk_size must be positive, got {chunk_size}")
        self.out_dir = Path(out_dir)
        self.prefix = prefix
        self.chunk_size = chunk_size
        self.sep_token = sep_token
        self.dtype = np.dtype(dtype)
        dtype_code(self.dtype)  # fail early on a dtype the format cannot name
        self._buffer = np.full(chunk_size, sep_token, dtype=self.dtype)
        self._filled = 0
        self.filenames: list[Path] = []
        self.tokens_added = 0

    def chunk_path(self, index: int) -> Path:
        return self.out_dir / f"{self.prefix}_{index:010d}.bin"

    def add_array(self, tokens: np.ndarray) -> None:
        tokens = np.asarray(tokens)
        self.tokens_added += tokens.size
        start = 0
        while start < tokens.size:
            take = min(self.chunk_size - self._filled, tokens.size - start)
            self._buffer[self._filled : self._filled + take] = tokens[start : start + take]
            self._filled += take
            start += take
            if self._filled == self.chunk_size:
                self._write()

    def _write(self) -> None:
        self.filenames.append(write_chunk(self.chunk_path(len(self.filenames)), self._buffer))
        self._buffer.fill(self.sep_token)
        self._filled = 0

    @property
    def padding(self) -> int:
        """Separator tokens that `finish()` adds to fill the last chunk."""
        return self.chunk_size - self._filled if self._filled else 0

    def finish(self) -> list[Path]:
        if self._filled:
            self._write()
        return list(self.filenames)


def find_chunk_files(data_dir: PathLike, prefix: str) -> list[Path]:
    """The chunk files `{prefix}*.bin` in `data_dir`, sorted; the upstream loader's prefixes are
    `c4` (train) and `validation`."""
    data_dir = Path(data_dir).expanduser()
    if not data_dir.is_dir():
        raise PackedDatasetError(f"data directory not found: {data_dir}")
    files = sorted(p for p in data_dir.glob(f"{prefix}*.bin") if p.is_file())
    if not files:
        raise PackedDatasetError(f"no chunk files {prefix}*.bin in {data_dir}")
    return files


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

    def _samples(self, positions: Iterator[int]) -> Iterator[tuple[int, torch.Tensor]]:
        """Yields (position, sample) for increasing positions, stopping when the stream ends."""
        raise NotImplementedError

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


class PackedDataset(ResumableStream):
    """Blocks of `block_size + 1` tokens (int64 tensors) from packed chunk files.

    Each epoch orders all blocks of all files once: files are shuffled (seed, epoch), taken in
    windows of `n_chunks` files, and the blocks inside a window shuffled. Block g of that order goes
    to rank g % num_processes, so every block is read exactly once per epoch across ranks (and
    across each rank's dataloader workers), however few files there are. With `wrap` the stream is
    endless and each epoch is reshuffled; without it, one pass.

    A file's blocks are its first chunk_size // (block_size + 1) full blocks; a chunk size that is
    a multiple of block_size + 1 (as prepare's default 2049 * 1024) wastes nothing.
    """

    def __init__(
        self,
        filenames: Sequence[PathLike],
        block_size: int,
        seed: int = 12345,
        shuffle: bool = True,
        wrap: bool = False,
        num_processes: int = 1,
        process_rank: int = 0,
        n_chunks: int = 16,
        batch_size: Optional[int] = None,
    ):
        super().__init__(batch_size)
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        if not 0 <= process_rank < num_processes:
            raise ValueError(f"process_rank {process_rank} is not in [0, {num_processes})")
        if not filenames:
            raise PackedDatasetError("PackedDataset got no chunk files")
        self.block_size = block_size
        self.seed = seed
        self.shuffle = shuffle
        self.wrap = wrap
        self.num_processes = num_processes
        self.process_rank = process_rank
        self.n_chunks = max(1, n_chunks)
        headers = [read_header(f) for f in filenames]
        self._paths = [h.path for h in headers]
        self._dtypes = [h.dtype for h in headers]
        self._blocks = np.array([h.chunk_size // (block_size + 1) for h in headers], dtype=np.int64)
        self.blocks_per_epoch = int(self._blocks.sum())
        if self.blocks_per_epoch == 0:
            largest = max(h.chunk_size for h in headers)
            raise PackedDatasetError(
                f"no chunk file holds a block of {block_size + 1} tokens (largest chunk: {largest} tokens, "
                f"first file {self._paths[0]})"
            )
        if self.blocks_per_epoch < num_processes:
            raise PackedDatasetError(
                f"the {len(self._paths)} chunk files (first {self._paths[0]}) hold {self.blocks_per_epoch} blocks of "
                f"{block_size + 1} tokens, fewer than the {num_processes} processes"
            )
        wasted = sum(h.chunk_size % (block_size + 1) for h in headers)
        if wasted > 0.05 * sum(h.chunk_size for h in headers):
            warnings.warn(
                f"chunk sizes are not multiples of block_size + 1 = {block_size + 1}: {wasted} tokens per epoch "
                "are never read; prepare with --chunk_size a multiple of block_size + 1",
                stacklevel=2,
            )
        # Blocks of one epoch that go to this rank: g = rank, rank + P, ...
        self.rank_blocks_per_epoch = -(-(self.blocks_per_epoch - process_rank) // num_processes)
        self._epoch_cache: Optional[tuple] = None
        self._window_cache: Optional[tuple] = None
        self._mmaps: OrderedDict[int, np.memmap] = OrderedDict()

    def __getstate__(self):
        # Memory maps do not travel to dataloader workers; each worker opens its own.
        state = self.__dict__.copy()
        state["_mmaps"] = OrderedDict()
        return state

    def stream_length(self) -> Optional[int]:
        return None if self.wrap else self.rank_blocks_per_epoch

    # --- where a block sits
    def _epoch_layout(self, epoch: int):
        """File order and window boundaries (in blocks) of one epoch."""
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            n_files = len(self._paths)
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch]).permutation(n_files)
            else:
                order = np.arange(n_files)
            window_files = [order[i : i + self.n_chunks] for i in range(0, n_files, self.n_chunks)]
            window_blocks = np.array([self._blocks[files].sum() for files in window_files], dtype=np.int64)
            window_starts = np.concatenate([[0], np.cumsum(window_blocks)])
            self._epoch_cache = (epoch, window_files, window_starts)
            self._window_cache = None
        return self._epoch_cache

    def _window(self, epoch: int, window: int, files: np.ndarray):
        """Within one window: the shuffled order of its blocks and where each file's blocks start."""
        if self._window_cache is None or self._window_cache[:2] != (epoch, window):
            file_starts = np.concatenate([[0], np.cumsum(self._blocks[files])])
            n = int(file_starts[-1])
            if self.shuffle:
                order = np.random.default_rng([self.seed, epoch, window]).permutation(n)
            else:
                order = np.arange(n)
            self._window_cache = (epoch, window, order, file_starts)
        return self._window_cache[2:]

    def locate(self, position: int) -> tuple[int, int]:
        """(file index, block index in that file) of this rank's sample at `position`."""
        epoch, index = divmod(position, self.rank_blocks_per_epoch)
        g = self.process_rank + index * self.num_processes
        _, window_files, window_starts = self._epoch_layout(epoch)
        window = int(np.searchsorted(window_starts, g, side="right")) - 1
        files = window_files[window]
        order, file_starts = self._window(epoch, window, files)
        local = int(order[g - window_starts[window]])
        slot = int(np.searchsorted(file_starts, local, side="right")) - 1
        return int(files[slot]), local - int(file_starts[slot])

    # --- reading
    def _mmap(self, file_index: int) -> np.memmap:
        mm = self._mmaps.get(file_index)
        if mm is None:
            mm = np.memmap(self._paths[file_index], dtype=self._dtypes[file_index], mode="r", offset=HEADER_SIZE)
            self._mmaps[file_index] = mm
            if len(self._mmaps) > 2 * self.n_chunks:
                self._mmaps.popitem(last=False)
        else:
            self._mmaps.move_to_end(file_index)
        return mm

    def sample_at(self, position: int) -> Optional[torch.Tensor]:
        """This rank's sample at `position`, or None past the end of a stream without wrap."""
        if not self.wrap and position >= self.rank_blocks_per_epoch:
            return None
        file_index, block = self.locate(position)
        n = self.block_size + 1
        tokens = self._mmap(file_index)[block * n : (block + 1) * n]
        return torch.from_numpy(tokens.astype(np.int64))

    def _samples(self, positions):
        for position in positions:
            sample = self.sample_at(position)
            if sample is None:
                return
            yield position, sample

    # --- resume
    def _identity(self) -> dict:
        return {
            "seed": self.seed,
            "block_size": self.block_size,
            "shuffle": self.shuffle,
            "num_processes": self.num_processes,
            "blocks_per_epoch": self.blocks_per_epoch,
            "n_chunks": self.n_chunks,
        }

    def state_dict(self) -> dict:
        """Where this rank's stream stands. In DDP every rank consumes as many samples, so rank 0's
        state resumes any rank."""
        return {"kind": "PackedDataset", "version": STATE_VERSION, "consumed": self.consumed, **self._identity()}

    def load_state_dict(self, state: dict) -> None:
        _check_state(state, "PackedDataset", self._identity())
        self.consumed = int(state["consumed"])


class CombinedDataset(ResumableStream):
    """Mixes several streams by weight, addressed by position like `PackedDataset`.

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
    resumes exactly, any number of dataloader workers read the same sequence, and iterating yields
    sample_at(consumed), sample_at(consumed + 1), ... Without `wrap`, a pass ends at the first
    position whose dataset has no block left (sample_at returns None from there on).

    The datasets may be given new weights on resume: each continues from the position it had
    reached, and the positions after the resume point follow the new weights.
    """

    WINDOW = 4096
    SCHEME = "window-apportioned"  # recorded in the state: how choices are made
    _SEED_DOMAIN = 0x4D4958  # keeps the mix's generators apart from PackedDataset's (seed, epoch, window)

    def __init__(self, datasets: Sequence[PackedDataset], weights: Sequence[float], seed: int = 12345,
                 batch_size: Optional[int] = None, names: Optional[Sequence[str]] = None):
        super().__init__(batch_size)
        if not datasets or len(datasets) != len(weights):
            raise ValueError(f"need one weight per dataset, got {len(datasets)} datasets and {len(weights)} weights")
        if names is not None and len(names) != len(datasets):
            raise ValueError(f"need one name per dataset, got {len(names)} names for {len(datasets)} datasets")
        weights = np.asarray(weights, dtype=np.float64)
        if not np.all(np.isfinite(weights)) or not np.all(weights >= 0) or weights.sum() <= 0:
            raise UserError(f"dataset weights must be non-negative with a positive sum, got {weights.tolist()}")
        ranks = {(d.num_processes, d.process_rank) for d in datasets}
        if len(ranks) != 1:
            raise ValueError(f"the combined datasets must share num_processes and process_rank, got {sorted(ranks)}")
        self.datasets = list(datasets)
        self.names = list(names) if names is not None else None
        self.weights = weights / weights.sum()
        self.seed = seed
        self.num_processes, self.process_rank = ranks.pop()
        # r_i = w_i / (w_i + ... + w_last); a suffix of zero weights takes nothing.
        suffix = np.cumsum(self.weights[::-1])[::-1]
        self._ratios = [float(w / s) if s > 0 else 0.0 for w, s in zip(self.weights[:-1], suffix[:-1])]
        self._finite = [not d.wrap for d in self.datasets]
        # A resume point with other weights than the ones the datasets' positions were reached with:
        # from `_base` on, dataset i's position is shifted by `_shift[i]`.
        self._base = 0
        self._shift = np.zeros(len(self.datasets), dtype=np.int64)
        self._windows: OrderedDict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = OrderedDict()

    def stream_length(self) -> Optional[int]:
        return None  # a finite mix ends where a chosen dataset runs out: sample_at returns None from there

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

    def _window(self, window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(dataset of each offset, its rank among the window's positions of that dataset, each
        dataset's position at the window's start)."""
        cached = self._windows.get(window)
        if cached is not None:
            self._windows.move_to_end(window)
            return cached
        start = self.apportion(window * self.WINDOW)
        counts = self.apportion((window + 1) * self.WINDOW) - start
        choices = np.repeat(np.arange(len(self.datasets)), counts)
        rng = np.random.default_rng([self.seed, self.process_rank, window, self._SEED_DOMAIN])
        choices = rng.permutation(choices)
        order = np.argsort(choices, kind="stable")
        first = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rank = np.empty(self.WINDOW, dtype=np.int64)
        rank[order] = np.arange(self.WINDOW) - first[choices[order]]
        self._windows[window] = cached = (choices, rank, start)
        if len(self._windows) > 4:  # a micro batch may straddle two windows
            self._windows.popitem(last=False)
        return cached

    def positions_at(self, position: int) -> np.ndarray:
        """Each dataset's position (blocks taken from it) when the mix is at `position`."""
        window, offset = divmod(position, self.WINDOW)
        choices, _, start = self._window(window)
        counts = start + np.bincount(choices[:offset], minlength=len(self.datasets))
        return counts + self._shift if position >= self._base else counts

    def locate(self, position: int) -> tuple[int, int]:
        """(dataset index, position in that dataset) of the mix's sample at `position`."""
        window, offset = divmod(position, self.WINDOW)
        choices, rank, start = self._window(window)
        choice = int(choices[offset])
        sub = int(start[choice] + rank[offset])
        if position >= self._base:
            sub += int(self._shift[choice])
        return choice, sub

    def sample_at(self, position: int) -> Optional[torch.Tensor]:
        """The mix's sample at `position`, or None past the end of a finite mix."""
        if any(self._finite):
            taken = self.positions_at(position + 1)
            if any(finite and taken[i] > d.rank_blocks_per_epoch
                   for i, (finite, d) in enumerate(zip(self._finite, self.datasets))):
                return None  # this position or an earlier one chose a dataset that had run out
        choice, sub = self.locate(position)
        return self.datasets[choice].sample_at(sub)

    def _samples(self, positions):
        for position in positions:
            sample = self.sample_at(position)
            if sample is None:
                return
            yield position, sample

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

    def state_dict(self) -> dict:
        datasets = []
        for dataset, position in zip(self.datasets, self.positions_at(self.consumed)):
            state = dataset.state_dict()
            state["consumed"] = int(position)
            datasets.append(state)
        return {
            "kind": "CombinedDataset",
            "version": STATE_VERSION,
            "scheme": self.SCHEME,
            "consumed": self.consumed,
            "weights": self.weights.tolist(),
            "datasets": datasets,
            **self._identity(),
        }

    def load_state_dict(self, state: dict) -> None:
        _check_state(state, "CombinedDataset", self._identity())
        positions = []
        for dataset, sub_state in zip(self.datasets, state["datasets"]):
            _check_state(sub_state, "PackedDataset", dataset._identity())
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


def _check_state(state: dict, kind: str, identity: dict) -> None:
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
