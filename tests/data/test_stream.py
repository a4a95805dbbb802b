"""Streams addressed by position and their resume state (lit_gpt/data/stream.py), through PackedStream."""

import pytest
import torch

from lit_gpt.errors import UserError
from lit_gpt.data import PackedStream
from tests.data.helpers import rows


def test_iteration_yields_sample_at_in_order(chunk_files):
    ds = PackedStream(chunk_files, 7, seed=5, num_processes=2, process_rank=1)
    iterated = rows(ds)
    assert iterated == rows(ds.sample_at(p) for p in range(ds.rank_blocks_per_epoch))
    assert ds.sample_at(ds.rank_blocks_per_epoch) is None


def test_state_counts_the_samples_taken(chunk_files):
    ds = PackedStream(chunk_files, 7, seed=2, wrap=True)
    it = iter(ds)
    for _ in range(12):
        next(it)
    assert ds.state_dict()["consumed"] == 12
    following = next(it)
    again = PackedStream(chunk_files, 7, seed=2, wrap=True)
    again.load_state_dict(ds.state_dict() | {"consumed": 12})
    assert torch.equal(next(iter(again)), following)
    assert torch.equal(again.sample_at(12), following)


def test_a_finite_pass_restarts_after_it_ends(chunk_files):
    ds = PackedStream(chunk_files, 7, shuffle=False)
    first = rows(ds)
    assert ds.consumed == 0 and rows(ds) == first


def test_resume_refuses_a_different_data_order(chunk_files):
    state = PackedStream(chunk_files, 7, seed=1).state_dict()
    with pytest.raises(UserError, match="seed"):
        PackedStream(chunk_files, 7, seed=2).load_state_dict(state)
    with pytest.raises(UserError, match="num_processes"):
        PackedStream(chunk_files, 7, seed=1, num_processes=2).load_state_dict(state)
