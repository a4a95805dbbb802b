"""Training and validation batches, read by position from one global stream of blocks.

Every process opens the same stream (num_processes=1): a `PackedStream`, or a `MixedStream`
mixing several file prefixes by weight (`--train_prefix c4:0.7,wiki:0.3`), whose choice of prefix
for each position is itself a function of (seed, position). Each process reads only its own
blocks by position, so nothing is read twice. Optimizer step s of a run consumes the
global_batch_size blocks starting at `position(s)`; inside the step, the micro batch with global
index j = micro_step * world_size + rank takes the j-th run of micro_batch_size blocks. The same
index seeds its MEAP mask (`lit_gpt.meap.mask_seed`), so the blocks and masks of a step do not
depend on the number of processes, and a resumed run jumps straight to its position.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Union

import numpy as np
import torch

from lit_gpt.errors import UserError
from lit_gpt.meap import MEAPCollator
from lit_gpt.data import HEADER_SIZE, MixedStream, PackedStream, find_chunk_files, read_header
from lit_gpt.pretrain.args import parse_data_mix

Batch = tuple[torch.Tensor, torch.Tensor]  # (inputs, targets), each (B, T) int64
Stream = Union[PackedStream, MixedStream]


def open_stream(data_dir: str | Path, prefix: str, block_size: int, seed: int, shuffle: bool, wrap: bool,
                setting: str) -> Stream:
    """The chunk files `{prefix}*.bin` in data_dir as one stream, `prefix` maybe a weighted mix
    (`c4:0.7,wiki:0.3`); errors name the setting."""
    mix = parse_data_mix(prefix)
    files = [_chunk_files(data_dir, name, block_size, setting) for name, _ in mix]
    owner: dict[Path, str] = {}
    for (name, _), paths in zip(mix, files):
        for path in paths:
            if path in owner:  # `c4` also globs `c4_news*.bin`
                raise UserError(
                    f"--train_prefix {prefix!r}: {path} matches both {owner[path]!r} and {name!r}; "
                    "every chunk file must belong to one prefix (rename the files or the prefixes)"
                )
            owner[path] = name
    streams = [PackedStream(paths, block_size, seed=seed, shuffle=shuffle, wrap=wrap) for paths in files]
    if len(streams) == 1:
        return streams[0]
    return MixedStream(streams, [weight for _, weight in mix], seed=seed, names=[name for name, _ in mix])


def _chunk_files(data_dir: str | Path, prefix: str, block_size: int, setting: str) -> list[Path]:
    """The files of one prefix, checked to hold at least one training sequence."""
    try:
        files = find_chunk_files(data_dir, prefix)
    except UserError as err:
        raise UserError(f"--{setting}: {err}") from None
    largest = max(read_header(f).chunk_size for f in files)
    if largest < block_size + 1:
        raise UserError(
            f"--block_size {block_size}: the chunks {prefix}*.bin in {data_dir} hold {largest} tokens, fewer than "
            f"the {block_size + 1} a training sequence needs (prepare the data with a larger --chunk_size)"
        )
    return files


def check_data_tokenizer(data_dir: str | Path, tokenizer, setting: str) -> None:
    """Stops a run whose chunks were prepared with another tokenizer than --tokenizer_dir, using the
    fingerprint prepare_c4.py records in manifest.json (skipped when there is no manifest)."""
    from lit_gpt.prepare.pipeline import MANIFEST, tokenizer_fingerprint

    path = Path(data_dir).expanduser() / MANIFEST
    try:
        recorded = json.loads(path.read_text())["tokenizer"]
        fingerprint = recorded["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError):
        return
    if fingerprint != tokenizer_fingerprint(tokenizer):
        raise UserError(
            f"--{setting} {data_dir} was prepared with the tokenizer in {recorded.get('path', '?')} "
            f"({recorded.get('vocab_size', '?')} tokens), which differs from --tokenizer_dir's "
            f"({len(tokenizer)} tokens): pass the tokenizer the data was prepared with"
        )


@dataclass(eq=False)  # compared by identity, as the stream it reads
class TrainBatches:
    """The micro batches of each optimizer step for one process, masked in the collate step."""

    dataset: Stream
    collator: MEAPCollator
    micro_batch_size: int
    grad_accum: int
    rank: int = 0
    world_size: int = 1
    # Stream position of step `start_step`; a resume moves both.
    start_step: int = 0
    start_position: int = 0
    # step -> ([MASK] inputs, inputs) of this process, counted in the collate step (the prefetch
    # thread) and taken by `mask_fraction` when the step is logged
    _masked: dict[int, tuple[int, int]] = field(default_factory=dict, repr=False)

    def position(self, step: int) -> int:
        """Stream position of the first block of optimizer step `step` (0-based)."""
        global_batch = self.micro_batch_size * self.grad_accum * self.world_size
        return self.start_position + (step - self.start_step) * global_batch

    def micro_batch(self, step: int, micro_step: int) -> Batch:
        index = micro_step * self.world_size + self.rank
        first = self.position(step) + index * self.micro_batch_size
        blocks = [self.dataset.sample_at(p) for p in range(first, first + self.micro_batch_size)]
        return self.collator(blocks, step, micro_step, self.rank, self.world_size)

    def mask_fraction(self, before_step: int) -> Optional[float]:
        """The share of this process's input positions that were [MASK] over the steps before
        `before_step` (0-based) not reported yet: the mask ratio the model really saw."""
        done = [s for s in list(self._masked) if s < before_step]
        counts = [self._masked.pop(s) for s in done]
        total = sum(n for _, n in counts)
        return sum(m for m, _ in counts) / total if total else None

    def step_tensors(self, step: int, pin_memory: bool = False) -> Batch:
        """The micro batches of step `step` stacked into (grad_accum, B, T) inputs and targets,
        pinned for an asynchronous copy to a GPU when asked: host work the prefetch thread does."""
        batches = [self.micro_batch(step, i) for i in range(self.grad_accum)]
        inputs, targets = torch.stack([b[0] for b in batches]), torch.stack([b[1] for b in batches])
        mask_id = self.collator.mask_token_id
        self._masked[step] = (int((inputs == mask_id).sum()) if mask_id is not None else 0, inputs.numel())
        if pin_memory:
            inputs, targets = inputs.pin_memory(), targets.pin_memory()
        return inputs, targets

    def state_dict(self, step: int) -> dict:
        """The stream's state at the start of step `step`: all a resume needs (the same on every rank)."""
        return {"step": step, "stream": self.dataset.state_dict(self.position(step))}

    def load_state_dict(self, state: dict) -> None:
        try:
            self.dataset.load_state_dict(state["stream"])
            step = int(state["step"])
        except (KeyError, TypeError) as err:
            raise UserError(f"the checkpoint's data state is incomplete: {err}") from None
        self.start_step, self.start_position = step, self.dataset.consumed


@dataclass(eq=False)
class ValBatches:
    """The first `eval_iters` micro batches of the validation stream, split over the processes,
    never masked.

    Every process gets the same number of full batches (FSDP needs every rank in every forward):
    eval_iters // world_size (at least 1), fewer when the validation data is short. So the same
    sequences are evaluated whatever the number of processes (when it divides eval_iters).
    """

    dataset: PackedStream
    micro_batch_size: int
    eval_iters: int
    rank: int = 0
    world_size: int = 1

    def __len__(self) -> int:
        available = self.dataset.blocks_per_epoch // (self.micro_batch_size * self.world_size)
        return min(max(1, self.eval_iters // self.world_size), available)

    def __iter__(self):
        collate = MEAPCollator(mask_ratio=0.0, mask_token_id=None)
        for i in range(len(self)):
            first = (i * self.world_size + self.rank) * self.micro_batch_size
            blocks = [self.dataset.sample_at(p) for p in range(first, first + self.micro_batch_size)]
            yield collate(blocks, 0, 0)


def find_val_stream(data_dir: Optional[str], train_data_dir: str, prefix: str, block_size: int,
                    seed: int) -> Optional[PackedStream]:
    """The validation stream; None (validation skipped) when val_data_dir is unset and
    train_data_dir has no `{prefix}*.bin`. An explicit val_data_dir without them is an error."""
    if data_dir is None:
        if not any(Path(train_data_dir).expanduser().glob(f"{prefix}*.bin")):
            return None
        data_dir, setting = train_data_dir, "train_data_dir"
    else:
        setting = "val_data_dir"
    files = _chunk_files(data_dir, prefix, block_size, setting)
    return PackedStream(files, block_size, seed=seed, shuffle=False, wrap=False)


# ----------------------------------------------------------------------------- token ids vs. vocabulary
_PROGRESS_BYTES = 1 << 30  # show a progress bar when scanning more than this


def scan_token_range(path: Path) -> tuple[int, int]:
    """(smallest, largest) token id of one chunk file, read memory-mapped and vectorised."""
    header = read_header(path)
    tokens = np.memmap(path, dtype=header.dtype, mode="r", offset=HEADER_SIZE, shape=(header.chunk_size,))
    return int(tokens.min()), int(tokens.max())


def check_token_ids(data_dir: str | Path, prefix: str, vocab_size: int, setting: str) -> None:
    """Stops a run whose chunks hold a token id outside the model's vocabulary (it would train until
    the first such block, then fail with an IndexError or a device-side assert).

    Every file is scanned (memory-mapped, vectorised): the maximum a manifest records is not
    trusted, since a manifest that understates it would let the run fail mid-way.
    """
    from tqdm import tqdm

    todo = [path for name, _ in parse_data_mix(prefix) for path in find_chunk_files(data_dir, name)]
    total = sum(path.stat().st_size for path in todo)
    with tqdm(total=total, desc=f"checking token ids in {data_dir}", unit="B", unit_scale=True, dynamic_ncols=True,
              disable=total <= _PROGRESS_BYTES) as progress:
        for path in todo:
            low, high = scan_token_range(path)
            progress.update(path.stat().st_size)
            if high >= vocab_size or low < 0:
                raise UserError(
                    f"--{setting} {data_dir}: {path.name} holds token id {high if high >= vocab_size else low}, "
                    f"outside the model's vocabulary of {vocab_size} (ids 0..{vocab_size - 1}): prepare the data "
                    "with the run's tokenizer, or enlarge the model's vocab_size"
                )
