"""Pretraining data loaders: packed chunk files by prefix, mixed by weight, resumable.

    dataset = build_dataset(data_dir, [("c4", 1.0)], block_size=2048, seed=42,
                            num_processes=fabric.world_size, process_rank=fabric.global_rank)
    loader = StatefulLoader(dataset, batch_size=8, num_workers=2, collate_fn=collate)
    for batch in loader: ...
    checkpoint["data"] = loader.state_dict()          # small, JSON-serialisable
    loader.load_state_dict(checkpoint["data"])         # next batches are the ones that followed

The DataLoader's worker processes each hold a copy of the dataset, so the main process cannot ask
them where they are. It does not need to: the order of samples is a pure function of (seed, epoch,
rank), and `StatefulLoader` counts the batches it hands to the trainer, which is the position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence, Union

from torch.utils.data import DataLoader

from lit_gpt.errors import UserError
from lit_gpt.data import MixedStream, PackedStream, ResumableStream, find_chunk_files


class StatefulLoader(DataLoader):
    """A DataLoader over a `ResumableStream` that records how many samples the trainer has taken.

    A drop-in for `DataLoader(dataset, batch_size, num_workers=..., collate_fn=...)`: it tells the
    stream the batch size, so each worker produces exactly the batches a single process would, in
    the order the DataLoader returns them, and after each batch it sets the stream's `consumed`,
    so `dataset.state_dict()` (or `loader.state_dict()`) is right with any number of workers.
    Being a DataLoader, it can go through `fabric.setup_dataloaders` (iterable datasets get no
    distributed sampler there; each rank passes its own `process_rank` to the dataset).
    """

    def __init__(
        self,
        dataset: ResumableStream,
        batch_size: int,
        num_workers: int = 0,
        collate_fn: Optional[Callable] = None,
        pin_memory: bool = False,
        prefetch_factor: Optional[int] = None,
        **kwargs: Any,
    ):
        if not isinstance(dataset, ResumableStream):
            raise TypeError(f"StatefulLoader reads a PackedStream or MixedStream, got {type(dataset).__name__}")
        if batch_size is None or batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        dataset.batch_size = batch_size
        # Persistent workers would keep the position they started with across passes.
        super().__init__(
            dataset,
            batch_size=batch_size,
            num_workers=num_workers,
            collate_fn=collate_fn,
            pin_memory=pin_memory,
            prefetch_factor=prefetch_factor if num_workers > 0 else None,
            persistent_workers=False,
            **kwargs,
        )

    def __iter__(self) -> Iterator[Any]:
        start = self.dataset.consumed
        for taken, batch in enumerate(super().__iter__(), start=1):
            # Every batch but a finite pass's last is full; after the last one the pass restarts.
            self.dataset.consumed = start + taken * self.batch_size
            yield batch
        self.dataset.consumed = 0

    def state_dict(self) -> dict:
        return self.dataset.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self.dataset.load_state_dict(state)


def build_dataset(
    data_dir: Union[str, Path],
    data_config: Sequence[tuple[str, float]],
    block_size: int,
    *,
    seed: int = 12345,
    shuffle: bool = True,
    wrap: bool = True,
    num_processes: int = 1,
    process_rank: int = 0,
    n_chunks: int = 16,
) -> ResumableStream:
    """A PackedStream per (prefix, weight) in `data_config`, mixed by weight when there are several."""
    if not data_config:
        raise UserError("the data config names no file prefix")
    datasets = [
        PackedStream(
            find_chunk_files(data_dir, prefix),
            block_size,
            seed=seed,
            shuffle=shuffle,
            wrap=wrap,
            num_processes=num_processes,
            process_rank=process_rank,
            n_chunks=n_chunks,
        )
        for prefix, _ in data_config
    ]
    if len(datasets) == 1:
        return datasets[0]
    return MixedStream(datasets, [weight for _, weight in data_config], seed=seed)
