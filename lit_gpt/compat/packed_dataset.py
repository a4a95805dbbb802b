"""TinyLlama's `lit_gpt.packed_dataset` API, for scripts written against TinyLlama or the upstream MEAP code.

    PackedDataset(filenames, n_chunks, block_size, seed=12345, shuffle=True, wrap=False,
                  num_processes=1, process_rank=0)
    PackedDatasetBuilder(outdir, prefix, chunk_size, sep_token, dtype="auto", vocab_size=None)
        .add_array(arr), .write_reminder(), .dtype, .filenames
    CombinedDataset(datasets, seed, weights=None)

The arguments mean what they mean there, and the classes yield the same samples in the same order
and write the same bytes. In particular `block_size` is the number of tokens in each sample: a
training sequence of T tokens reads T + 1, so TinyLlama passes `block_size = config.block_size + 1`.
What differs: bad files and arguments raise an error naming them where TinyLlama asserted, hit an
IndexError or looped forever, and tokens that do not fit the chunk dtype are refused instead of
wrapping around.

These classes keep TinyLlama's limits: the position in the stream is not saved, so a resumed run
cannot continue where it stopped. The trainer reads through `lit_gpt.data` instead
(`PackedStream`, `MixedStream`, `ChunkWriter`), whose order is a function of position and resumes
exactly; there `block_size` is T.
"""

from __future__ import annotations

import os
import random
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
    write_chunk,
)

# TinyLlama's module-level names.
dtypes = DTYPES
code = dtype_code
HDR_MAGIC = MAGIC
HDR_SIZE = HEADER_SIZE

__all__ = ["PackedDataset", "PackedDatasetBuilder", "PackedDatasetIterator", "CombinedDataset",
           "CombinedDatasetIterator", "dtypes", "code", "HDR_MAGIC", "HDR_SIZE"]


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

    def __init__(self, filenames: Sequence[PathLike], n_chunks: int, block_size: int, seed: int = 12345,
                 shuffle: bool = True, wrap: bool = False, num_processes: int = 1, process_rank: int = 0):
        for name, value in (("n_chunks", n_chunks), ("block_size", block_size), ("num_processes", num_processes)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PackedDataset: {name} must be an integer >= 1, got {value!r}")
        if not 0 <= process_rank < num_processes:
            raise ValueError(f"PackedDataset: process_rank {process_rank} is not in [0, {num_processes})")
        if len(filenames) == 0:
            raise PackedDatasetError("PackedDataset got no chunk files")
        self._filenames = list(filenames)
        self._n_chunks = int(n_chunks)
        self._block_size = int(block_size)
        self._seed = seed
        self._shuffle = shuffle
        self._wrap = wrap
        self._num_processes = num_processes
        self._process_rank = process_rank
        _check_uniform_chunks(self._filenames, self._block_size)

    def __iter__(self) -> "PackedDatasetIterator":
        worker_info = get_worker_info()
        num_workers = worker_info.num_workers if worker_info is not None else 1
        worker_id = worker_info.id if worker_info is not None else 0
        num_shards = num_workers * self._num_processes
        shard_id = self._process_rank * num_workers + worker_id
        max_num_files = len(self._filenames) // num_shards * num_shards
        filenames = self._filenames[shard_id:max_num_files:num_shards]
        if len(filenames) < self._n_chunks:
            raise PackedDatasetError(
                f"PackedDataset: {len(self._filenames)} chunk files (first {self._filenames[0]}) give shard "
                f"{shard_id} of {num_shards} (processes x dataloader workers) {len(filenames)} files, fewer than "
                f"n_chunks={self._n_chunks}"
            )
        return PackedDatasetIterator(filenames, self._n_chunks, self._block_size, self._seed, self._shuffle, self._wrap)


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


class PackedDatasetIterator:
    """One shard's endless stream of blocks (see `PackedDataset`)."""

    def __init__(self, filenames, n_chunks, block_size, seed, shuffle, wrap):
        self._filenames = list(filenames)
        self._n_chunks = n_chunks
        self._block_size = block_size
        self._shuffle = shuffle  # `seed` seeds the generator; `wrap` stops nothing, as in TinyLlama
        self._rng = np.random.default_rng(seed) if shuffle else None
        header = read_header(self._filenames[0])
        self._dtype = header.dtype
        self._n_blocks = header.chunk_size // block_size
        self._file_idx = 0
        self._mmaps: list[np.memmap] = []
        self._load_n_chunks()

    def _load_n_chunks(self) -> None:
        if self._n_chunks > len(self._filenames) - self._file_idx:
            self._file_idx = 0  # TinyLlama starts again at the first file
        names = self._filenames[self._file_idx : self._file_idx + self._n_chunks]
        self._mmaps = [np.memmap(name, dtype=self._dtype, mode="r", offset=HEADER_SIZE) for name in names]
        self._file_idx += self._n_chunks
        n_all_blocks = self._n_chunks * self._n_blocks
        self._block_idxs = self._rng.permutation(n_all_blocks) if self._shuffle else range(n_all_blocks)
        self._curr_idx = 0

    def __iter__(self) -> "PackedDatasetIterator":
        return self

    def __next__(self) -> torch.Tensor:
        if self._curr_idx >= len(self._block_idxs):
            self._load_n_chunks()
        chunk_id, block = divmod(int(self._block_idxs[self._curr_idx]), self._n_blocks)
        start = block * self._block_size
        self._curr_idx += 1
        return torch.from_numpy(self._mmaps[chunk_id][start : start + self._block_size].astype(np.int64))


class PackedDatasetBuilder:
    """Writes a token stream as chunk files `{outdir}/{prefix}_{counter:010d}.bin` of chunk_size tokens.

    `dtype="auto"` picks uint16 below 65500 tokens of `vocab_size`, else int32. `add_array` fills the
    current chunk and writes it once a further token needs room; `write_reminder()` writes the
    current chunk with its unfilled tail left as `sep_token` (a chunk of separators only when
    nothing was added since the last one was written, as in TinyLlama). Each file is written under a
    temporary name and renamed once complete.
    """

    def __init__(self, outdir: PathLike, prefix: str, chunk_size: int, sep_token: int, dtype="auto",
                 vocab_size: Optional[int] = None):
        if isinstance(dtype, str) and dtype == "auto":
            if vocab_size is None:
                raise ValueError("vocab_size cannot be None when dtype='auto'")
            self._dtype = token_dtype(vocab_size)
        else:
            self._dtype = dtype
        dtype_code(self._dtype)  # a dtype the format has a code for
        if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
            raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
        self._chunk_size = int(chunk_size)
        self._outdir = outdir
        self._prefix = prefix
        self._sep_token = sep_token
        self._arr = np.full(self._chunk_size, sep_token, dtype=self._dtype)
        self._idx = 0
        self._filenames: list[str] = []
        self._limits = np.iinfo(self._dtype) if np.issubdtype(np.dtype(self._dtype), np.integer) else None

    @property
    def dtype(self):
        return self._dtype

    @property
    def filenames(self) -> list[str]:
        return self._filenames.copy()

    def _write_chunk(self) -> None:
        filename = os.path.join(self._outdir, f"{self._prefix}_{len(self._filenames):010d}.bin")
        write_chunk(filename, self._arr)
        self._filenames.append(filename)
        self._arr.fill(self._sep_token)
        self._idx = 0

    def add_array(self, arr) -> None:
        arr = np.asarray(arr)
        if self._limits is not None and arr.size and (arr.min() < self._limits.min or arr.max() > self._limits.max):
            raise ValueError(
                f"token ids {arr.min()}..{arr.max()} do not fit the chunk dtype {np.dtype(self._dtype).name}"
            )
        while self._idx + arr.shape[0] > self._chunk_size:
            part_len = self._chunk_size - self._idx
            self._arr[self._idx : self._idx + part_len] = arr[:part_len]
            self._write_chunk()
            arr = arr[part_len:]
        self._arr[self._idx : self._idx + arr.shape[0]] = arr
        self._idx += arr.shape[0]

    def write_reminder(self) -> None:
        self._write_chunk()


class CombinedDataset(IterableDataset):
    """Draws each sample from one of `datasets`, chosen with `random.Random(seed).choices` by weight
    (equal weights when None), as TinyLlama does."""

    def __init__(self, datasets: Sequence, seed, weights: Optional[Sequence[float]] = None):
        if len(datasets) == 0:
            raise ValueError("CombinedDataset got no datasets")
        if weights is not None and len(weights) != len(datasets):
            raise ValueError(f"CombinedDataset: {len(weights)} weights for {len(datasets)} datasets")
        self._seed = seed
        self._datasets = datasets
        self._weights = list(weights) if weights is not None else [1 / len(datasets)] * len(datasets)

    def __iter__(self) -> "CombinedDatasetIterator":
        return CombinedDatasetIterator(self._datasets, self._seed, self._weights)


class CombinedDatasetIterator:
    def __init__(self, datasets, seed, weights):
        self._datasets = [iter(dataset) for dataset in datasets]
        self._weights = weights
        self._rng = random.Random(seed)

    def __iter__(self) -> "CombinedDatasetIterator":
        return self

    def __next__(self):
        (dataset,) = self._rng.choices(self._datasets, weights=self._weights, k=1)
        return next(dataset)
