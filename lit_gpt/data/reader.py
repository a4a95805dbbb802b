"""Reading packed chunk files as one stream of blocks per rank, addressed by position: where each block
sits is a pure function of (seed, epoch, rank), so a resumed reader jumps straight to its position."""

from __future__ import annotations

import warnings
from collections import OrderedDict
from typing import Optional, Sequence

import numpy as np
import torch

from lit_gpt.data.format import HEADER_SIZE, PackedDatasetError, PathLike, read_header
from lit_gpt.data.stream import ResumableStream


class PackedStream(ResumableStream):
    """Blocks of `block_size + 1` tokens (int64 tensors) from packed chunk files.

    Each epoch orders all blocks of all files once: files are shuffled (seed, epoch), taken in
    windows of `n_chunks` files, and the blocks inside a window shuffled. Block g of that order goes
    to rank g % num_processes, so every block is read exactly once per epoch across ranks, however
    few files there are. With `wrap` the stream is endless and each epoch is reshuffled; without it,
    one pass.

    `block_size` is the training length T (each block holds T + 1 tokens); TinyLlama's
    `lit_gpt.compat.packed_dataset.PackedDataset` counts the T + 1 instead.

    A file's blocks are its first chunk_size // (block_size + 1) full blocks; a chunk size that is
    a multiple of block_size + 1 (as prepare's default 4097 * 1024 for T = 4096) wastes nothing.
    """

    KIND = "PackedDataset"

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
    ):
        super().__init__()
        if block_size <= 0:
            raise ValueError(f"block_size must be positive, got {block_size}")
        if not 0 <= process_rank < num_processes:
            raise ValueError(f"process_rank {process_rank} is not in [0, {num_processes})")
        if not filenames:
            raise PackedDatasetError("PackedStream got no chunk files")
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
        # Memory maps are not pickled: a copy opens its own.
        state = self.__dict__.copy()
        state["_mmaps"] = OrderedDict()
        return state

    # --- where a block sits
    def _epoch_layout(self, epoch: int):
        """File order and window boundaries (in blocks) of one epoch."""
        if self._epoch_cache is None or self._epoch_cache[0] != epoch:
            n = len(self._paths)
            order = np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)
            window_files = [order[i : i + self.n_chunks] for i in range(0, n, self.n_chunks)]
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
            order = np.random.default_rng([self.seed, epoch, window]).permutation(n) if self.shuffle else np.arange(n)
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
        if file_index in self._mmaps:
            self._mmaps.move_to_end(file_index)
            return self._mmaps[file_index]
        mm = np.memmap(self._paths[file_index], dtype=self._dtypes[file_index], mode="r", offset=HEADER_SIZE)
        self._mmaps[file_index] = mm
        if len(self._mmaps) > 2 * self.n_chunks:
            self._mmaps.popitem(last=False)
        return mm

    def sample_at(self, position: int) -> Optional[torch.Tensor]:
        """This rank's sample at `position`, or None past the end of a stream without wrap."""
        if not self.wrap and position >= self.rank_blocks_per_epoch:
            return None
        file_index, block = self.locate(position)
        n = self.block_size + 1
        tokens = self._mmap(file_index)[block * n : (block + 1) * n]
        return torch.from_numpy(tokens.astype(np.int64))

    # --- resume
    def _identity(self) -> dict:
        names = ("seed", "block_size", "shuffle", "num_processes", "blocks_per_epoch", "n_chunks")
        return {name: getattr(self, name) for name in names}
