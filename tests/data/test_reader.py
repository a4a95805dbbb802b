"""Reading packed chunk files (lit_gpt/data/reader.py): int32 tokens, exactly-once sharding, shuffling, wrapping,
resume by position."""

import json
from collections import Counter

import numpy as np
import pytest
import torch

from lit_gpt.errors import UserError
from lit_gpt.data import MixedStream, PackedDatasetError, PackedStream
from tests.data.helpers import hand_written_chunk, naive_blocks, rows


def test_int32_tokens_for_large_vocabularies(tmp_path):
    hand_written_chunk(tmp_path / "big.bin", [70000, 1, 2, 3], code=4, dtype="<i4")
    ds = PackedStream([tmp_path / "big.bin"], block_size=3, shuffle=False)
    (block,) = list(ds)
    assert block.dtype == torch.int64 and block.tolist() == [70000, 1, 2, 3]


# ----------------------------------------------------------------------------- reading


def test_unshuffled_single_reader_yields_the_files_blocks_in_order(chunk_files):
    ds = PackedStream(chunk_files, block_size=7, shuffle=False)
    assert [tuple(b.tolist()) for b in ds] == naive_blocks(chunk_files, 7)
    assert ds.blocks_per_epoch == 12 + 5 + 9


@pytest.mark.parametrize("processes", [1, 2, 3])
def test_every_block_exactly_once_per_epoch_across_ranks(chunk_files, processes):
    seen = []
    for rank in range(processes):
        seen += rows(PackedStream(chunk_files, 7, seed=3, num_processes=processes, process_rank=rank))
    assert Counter(seen) == Counter(naive_blocks(chunk_files, 7))


def test_fewer_files_than_shards_splits_blocks_within_files(tmp_path):
    path = hand_written_chunk(tmp_path / "c4_0.bin", np.arange(1, 8 * 10 + 1))
    per_rank = []
    for rank in range(2):
        per_rank.append(rows(PackedStream([path], 7, seed=1, num_processes=2, process_rank=rank)))
    assert all(len(r) == 5 for r in per_rank)
    assert Counter(per_rank[0] + per_rank[1]) == Counter(naive_blocks([path], 7))


def test_shuffle_depends_on_the_seed(chunk_files):
    def order(seed):
        return [tuple(b.tolist()) for b in PackedStream(chunk_files, 7, seed=seed)]

    assert order(1) == order(1)
    assert order(1) != order(2)
    assert sorted(order(1)) == sorted(order(2))


def test_wrap_is_endless_and_reshuffles_each_epoch(chunk_files):
    ds = PackedStream(chunk_files, 7, seed=0, wrap=True, n_chunks=2)
    n = ds.blocks_per_epoch
    it = iter(ds)
    epochs = [[tuple(next(it).tolist()) for _ in range(n)] for _ in range(3)]
    reference = sorted(naive_blocks(chunk_files, 7))
    assert all(sorted(epoch) == reference for epoch in epochs)
    assert epochs[0] != epochs[1] != epochs[2]


def test_block_larger_than_every_chunk_is_an_error(tmp_path):
    path = hand_written_chunk(tmp_path / "c4_0.bin", range(10))
    with pytest.raises(PackedDatasetError, match="no chunk file holds a block"):
        PackedStream([path], block_size=10)


# ----------------------------------------------------------------------------- resume


def test_resumed_reader_yields_the_samples_that_followed(chunk_files):
    def loader():
        return PackedStream(chunk_files, 7, seed=9, wrap=True, n_chunks=2)

    full = loader()
    it = iter(full)
    expected = [next(it) for _ in range(45)]  # crosses epoch boundaries (26 blocks per epoch)

    first = loader()
    it = iter(first)
    for _ in range(18):
        next(it)
    state = json.loads(json.dumps(first.state_dict()))
    assert state["consumed"] == 18

    resumed = loader()
    resumed.load_state_dict(state)
    it = iter(resumed)
    for want in expected[18:]:
        assert torch.equal(next(it), want)


def test_resume_does_not_read_the_blocks_before_the_position(chunk_files, monkeypatch):
    ds = PackedStream(chunk_files, 7, seed=9, wrap=True)
    ds.load_state_dict({**ds.state_dict(), "consumed": 1000})
    reads = []
    original = np.memmap.__getitem__
    monkeypatch.setattr(np.memmap, "__getitem__", lambda self, key: reads.append(key) or original(self, key))
    it = iter(ds)
    for _ in range(4):
        next(it)
    assert len(reads) == 4
    assert ds.state_dict()["consumed"] == 1004


# ----------------------------------------------------------------------------- arguments


def test_bad_arguments_of_the_public_streams_raise_naming_them(chunk_files, two_sources):
    with pytest.raises(ValueError, match="block_size must be positive"):
        PackedStream(chunk_files, 0)
    with pytest.raises(ValueError, match=r"process_rank 2 is not in \[0, 2\)"):
        PackedStream(chunk_files, 4, num_processes=2, process_rank=2)
    a, b = (PackedStream(paths, 4) for paths in two_sources)
    with pytest.raises(ValueError, match="one weight per dataset"):
        MixedStream([a, b], [1.0])
    with pytest.raises(ValueError, match="one name per dataset"):
        MixedStream([a, b], [1.0, 1.0], names=["a"])
    with pytest.raises(UserError, match="non-negative with a positive sum"):
        MixedStream([a, b], [1.0, -1.0])
    with pytest.raises(ValueError, match="share num_processes and process_rank"):
        MixedStream([a, PackedStream(two_sources[1], 4, num_processes=2, process_rank=1)], [1.0, 1.0])
