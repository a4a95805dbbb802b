"""TinyLlama's `lit_gpt.packed_dataset` API, for scripts written against TinyLlama or the upstream MEAP code.

The arguments mean what they mean there, and the classes yield the same samples in the same order
and write the same bytes. In particular `block_size` is the number of tokens in each sample: a
training sequence of T tokens reads T + 1, so TinyLlama passes `block_size = config.block_size + 1`.
What differs: bad files and arguments raise an error naming them where TinyLlama asserted, hit an
IndexError or looped forever, and tokens that do not fit the chunk dtype are refused instead of
wrapping around.

The position in these streams is not saved, so a resumed run cannot continue where it stopped: the
trainer reads through `lit_gpt.data` instead, whose order is a function of position (and whose
`block_size` is T).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from lit_gpt.data.format import (
    DTYPES,
    HEADER_SIZE,
    MAGIC,
    PackedDatasetError,
    PathLike,
    dtype_code,
    read_header,
    token_dtype,
)
from lit_gpt.data.writer import ChunkWriter

# TinyLlama's module-level names.
dtypes = DTYPES
code = dtype_code
HDR_MAGIC = MAGIC
HDR_SIZE = HEADER_SIZE

__all__ = ["PackedDataset", "PackedDatasetBuilder", "CombinedDataset", "dtypes", "code", "HDR_MAGIC", "HDR_SIZE"]


@dataclass(eq=False, repr=False)
class PackedDataset(IterableDataset):
    """Samples of `block_size` tokens (int64 tensors) from chunk files, in TinyLlama's order.

    The files are dealt out to num_processes x dataloader workers (`filenames[shard::shards]`, the
    remainder beyond a multiple of the shard count is not read). Each shard reads its files
    `n_chunks` at a time and yields the blocks of those files, permuted with
    `np.random.default_rng(seed)` when `shuffle` (one generator per iterator, drawn once per
    group), in file order otherwise. A file's blocks are its first chunk_size // block_size runs of
    block_size tokens. When fewer than n_chunks files are left, the iterator starts again at the
    shard's first file: like TinyLlama's, it never ends, whatever `wrap` says (TinyLlama accepts
    `wrap` but its stop is disabled); end a loop by counting.
    """

    filenames: Sequence[PathLike]
    n_chunks: int
    block_size: int
    seed: int = 12345
    shuffle: bool = True
    wrap: bool = False
    num_processes: int = 1
    process_rank: int = 0

    def __post_init__(self):
        for name in ("n_chunks", "block_size", "num_processes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PackedDataset: {name} must be an integer >= 1, got {value!r}")
        if not 0 <= self.process_rank < self.num_processes:
            raise ValueError(f"PackedDataset: process_rank {self.process_rank} is not in [0, {self.num_processes})")
        if len(self.filenames) == 0:
            raise PackedDatasetError("PackedDataset got no chunk files")
        self.filenames = list(self.filenames)
        _check_uniform_chunks(self.filenames, self.block_size)

    def __iter__(self):
        worker_info = get_worker_info()
        num_workers = worker_info.num_workers if worker_info is not None else 1
        worker_id = worker_info.id if worker_info is not None else 0
        num_shards = num_workers * self.num_processes
        shard_id = self.process_rank * num_workers + worker_id
        max_num_files = len(self.filenames) // num_shards * num_shards
        filenames = self.filenames[shard_id:max_num_files:num_shards]
        if len(filenames) < self.n_chunks:
            raise PackedDatasetError(
                f"PackedDataset: {len(self.filenames)} chunk files (first {self.filenames[0]}) give shard "
                f"{shard_id} of {num_shards} (processes x dataloader workers) {len(filenames)} files, fewer than "
                f"n_chunks={self.n_chunks}"
            )
        return _blocks(filenames, self.n_chunks, self.block_size, self.seed, self.shuffle)


def _check_uniform_chunks(filenames: Sequence[PathLike], block_size: int) -> None:
    """TinyLlama takes the dtype and chunk size of the first file for all of them; refuse files that
    differ, and chunks too small for one block, instead of reading garbage or looping forever."""
    first = read_header(filenames[0])
    for name in filenames[1:]:
        header = read_header(name)
        if (header.dtype, header.chunk_size) != (first.dtype, first.chunk_size):
            raise PackedDatasetError(
                f"{name} holds {header.chunk_size} {np.dtype(header.dtype).name} tokens but {first.path} holds "
                f"{first.chunk_size} {np.dtype(first.dtype).name}: PackedDataset needs chunk files of one size and dtype"
            )
    if first.chunk_size < block_size:
        raise PackedDatasetError(
            f"{first.path} holds {first.chunk_size} tokens, fewer than one block of block_size={block_size}"
        )


def _blocks(filenames: list, n_chunks: int, block_size: int, seed: int, shuffle: bool):
    """One shard's endless stream of blocks (see `PackedDataset`)."""
    header = read_header(filenames[0])
    n_blocks = header.chunk_size // block_size
    rng = np.random.default_rng(seed)
    file_idx = 0
    while True:
        if n_chunks > len(filenames) - file_idx:
            file_idx = 0  # TinyLlama starts again at the first file
        group = filenames[file_idx : file_idx + n_chunks]
        mmaps = [np.memmap(name, dtype=header.dtype, mode="r", offset=HEADER_SIZE) for name in group]
        file_idx += n_chunks
        order = rng.permutation(n_chunks * n_blocks) if shuffle else range(n_chunks * n_blocks)
        for index in order:
            chunk, block = divmod(int(index), n_blocks)
            start = block * block_size
            yield torch.from_numpy(mmaps[chunk][start : start + block_size].astype(np.int64))


class PackedDatasetBuilder(ChunkWriter):
    """TinyLlama's chunk writer: `dtype="auto"` picks the dtype for `vocab_size` (`token_dtype`),
    `filenames` are strings, and `write_reminder()` writes the current chunk even when nothing was
    added since the last one was written (a chunk of separators only, as in TinyLlama)."""

    def __init__(self, outdir: PathLike, prefix: str, chunk_size: int, sep_token: int, dtype="auto",
                 vocab_size: Optional[int] = None):
        if isinstance(dtype, str) and dtype == "auto":
            if vocab_size is None:
                raise ValueError("vocab_size cannot be None when dtype='auto'")
            dtype = token_dtype(vocab_size)
        super().__init__(outdir, prefix, chunk_size, sep_token, dtype)
        self._outdir = outdir

    @property
    def filenames(self) -> list[str]:
        return [os.path.join(self._outdir, path.name) for path in self._paths]

    def add_array(self, arr) -> None:
        arr = np.asarray(arr)
        if arr.size and np.issubdtype(self.dtype, np.integer):
            limits = np.iinfo(self.dtype)
            if arr.min() < limits.min or arr.max() > limits.max:
                raise ValueError(f"token ids {arr.min()}..{arr.max()} do not fit the chunk dtype {self.dtype.name}")
        super().add_array(arr)

    def write_reminder(self) -> None:
        self._write()


class CombinedDataset(IterableDataset):
    """Draws each sample from one of `datasets`, chosen with `random.Random(seed).choices` by weight
    (equal weights when None), as TinyLlama does."""

    def __init__(self, datasets: Sequence, seed, weights: Optional[Sequence[float]] = None):
        if len(datasets) == 0:
            raise ValueError("CombinedDataset got no datasets")
        if weights is not None and len(weights) != len(datasets):
            raise ValueError(f"CombinedDataset: {len(weights)} weights for {len(datasets)} datasets")
        self.seed = seed
        self._datasets = datasets
        self._weights = list(weights) if weights is not None else [1 / len(datasets)] * len(datasets)

    def __iter__(self):
        iterators = [iter(dataset) for dataset in self._datasets]
        rng = random.Random(self.seed)
        while True:
            (iterator,) = rng.choices(iterators, weights=self._weights, k=1)
            try:
                yield next(iterator)
            except StopIteration:  # TinyLlama's iterator ends with the first dataset that does
                return
