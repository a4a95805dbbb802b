"""Weighted mixes of streams (lit_gpt/data/mixing.py): proportions, resume, mixing by position."""

import json

import numpy as np
import pytest
import torch

from lit_gpt.errors import UserError
from lit_gpt.data import MixedStream, PackedStream
from tests.data.helpers import naive_blocks, rows


def mix(two_sources, wrap=True, seed=0):
    a, b = two_sources
    return MixedStream(
        [PackedStream(a, 7, seed=seed, wrap=wrap), PackedStream(b, 7, seed=seed, wrap=wrap)], [0.8, 0.2], seed=seed
    )


def test_combined_dataset_respects_the_weights(two_sources):
    it = iter(mix(two_sources))
    firsts = [int(next(it)[0]) for _ in range(2000)]
    share_b = sum(t > 30_000 for t in firsts) / len(firsts)
    assert 0.17 < share_b < 0.23


def test_combined_dataset_without_wrap_ends_when_a_source_runs_out(two_sources):
    samples = rows(mix(two_sources, wrap=False))
    from_a = [s for s in samples if s[0] < 30_000]
    # a (100 blocks at weight 0.8) runs out after ~125 samples, before b (40 blocks at 0.2, ~200).
    assert len(set(samples)) == len(samples)
    assert len(from_a) == 100 and 0 < len(samples) - 100 < 40
    assert rows(mix(two_sources, wrap=False)) == samples


def test_combined_dataset_resumes(two_sources):
    full = iter(mix(two_sources))
    expected = [next(full) for _ in range(240)]

    first = mix(two_sources)
    it = iter(first)
    for _ in range(100):
        next(it)
    state = json.loads(json.dumps(first.state_dict()))
    assert state["consumed"] == 100
    assert sum(d["consumed"] for d in state["datasets"]) == 100

    resumed = mix(two_sources)
    resumed.load_state_dict(state)
    it = iter(resumed)
    for want in expected[100:]:
        assert torch.equal(next(it), want)


def test_finite_mix_restarts_after_a_resumed_pass(two_sources):
    reference = rows(mix(two_sources, wrap=False))
    partial = mix(two_sources, wrap=False)
    it = iter(partial)
    for _ in range(40):
        next(it)
    loader = mix(two_sources, wrap=False)
    loader.load_state_dict(json.loads(json.dumps(partial.state_dict())))
    assert rows(loader) == reference[40:]
    assert rows(loader) == reference  # the next pass starts from the beginning


def source_of(sample) -> str:
    return "a" if int(sample[0]) < 30_000 else "b"


def test_mix_iteration_yields_sample_at_in_order(two_sources):
    reference = mix(two_sources)
    iterated = rows(mix(two_sources, wrap=False))
    by_position = []
    finite = mix(two_sources, wrap=False)
    while (sample := finite.sample_at(len(by_position))) is not None:
        by_position.append(tuple(int(t) for t in sample))
    assert iterated == by_position
    it = iter(reference)
    assert all(torch.equal(next(it), reference.sample_at(p)) for p in range(300))


def test_each_source_is_read_in_its_own_order_from_its_first_block(two_sources):
    """The k-th block the mix takes from a source is that source's own sample k: the sub-position
    is the number of earlier positions that chose the source."""
    a, b = two_sources
    combined = mix(two_sources)
    taken = {"a": [], "b": []}
    for p in range(9000):  # crosses two choice windows and several epochs of each source
        sample = combined.sample_at(p)
        taken[source_of(sample)].append(tuple(int(t) for t in sample))
    for name, files in (("a", a), ("b", b)):
        alone = PackedStream(files, 7, seed=0, wrap=True)
        assert taken[name] == [tuple(int(t) for t in alone.sample_at(k)) for k in range(len(taken[name]))]
    # Every block of a source once per epoch of that source.
    assert sorted(taken["b"][:40]) == sorted(naive_blocks(b, 7))


def test_mix_proportions_hold_in_every_prefix_of_the_stream(two_sources):
    combined = mix(two_sources)
    sources = [source_of(combined.sample_at(p)) for p in range(10_000)]
    for n, tolerance in ((100, 0.1), (1000, 0.03), (4096, 0.01), (8192, 0.01), (10_000, 0.01)):
        share_b = sources[:n].count("b") / n
        assert abs(share_b - 0.2) < tolerance, (n, share_b)
    assert len(set(zip(sources, sources[1:]))) == 4  # interleaved, not runs of one source


def test_mix_at_a_far_position_draws_one_window(two_sources, monkeypatch):
    combined = mix(two_sources)
    draws = []
    original = np.random.default_rng
    monkeypatch.setattr(np.random, "default_rng", lambda *args: draws.append(args) or original(*args))
    far = 10**12 + 17
    sample = combined.sample_at(far)
    assert sample is not None and len(draws) <= 3  # one window of the mix, a source's epoch and window
    counts = [d["consumed"] for d in _state_at(two_sources, far)["datasets"]]
    assert sum(counts) == far
    assert abs(counts[1] - 0.2 * far) < MixedStream.WINDOW


def _state_at(two_sources, position):
    combined = mix(two_sources)
    combined.consumed = position
    return combined.state_dict()


def test_mix_resumes_at_a_far_position_without_reading_before_it(two_sources):
    far = 3 * 10**9 + 5
    state = json.loads(json.dumps(_state_at(two_sources, far)))
    reference = mix(two_sources)
    resumed = mix(two_sources)
    resumed.load_state_dict(state)
    it = iter(resumed)
    for p in range(far, far + 50):
        assert torch.equal(next(it), reference.sample_at(p))


def test_mix_order_follows_the_seed(two_sources):
    first = [source_of(mix(two_sources, seed=1).sample_at(p)) for p in range(200)]
    again = [source_of(mix(two_sources, seed=1).sample_at(p)) for p in range(200)]
    other = [source_of(mix(two_sources, seed=2).sample_at(p)) for p in range(200)]
    assert first == again and first != other


def test_zero_weight_source_is_never_read(two_sources):
    a, b = two_sources
    combined = MixedStream([PackedStream(a, 7, wrap=True), PackedStream(b, 7, wrap=True)], [1.0, 0.0])
    assert {source_of(combined.sample_at(p)) for p in range(5000)} == {"a"}


def test_new_weights_on_resume_continue_each_source_where_it_stopped(two_sources):
    a, b = two_sources
    first = mix(two_sources)
    it = iter(first)
    for _ in range(100):
        next(it)
    state = json.loads(json.dumps(first.state_dict()))
    at_a, at_b = (d["consumed"] for d in state["datasets"])

    reweighted = MixedStream([PackedStream(a, 7, seed=0, wrap=True), PackedStream(b, 7, seed=0, wrap=True)],
                                 [0.5, 0.5], seed=0)
    with pytest.warns(UserWarning, match="new weights"):
        reweighted.load_state_dict(state)
    it = iter(reweighted)
    following = [next(it) for _ in range(400)]
    from_b = [tuple(int(t) for t in s) for s in following if source_of(s) == "b"]
    alone = PackedStream(b, 7, seed=0, wrap=True)
    assert from_b == [tuple(int(t) for t in alone.sample_at(at_b + k)) for k in range(len(from_b))]
    assert 0.4 < len(from_b) / 400 < 0.6
    assert reweighted.state_dict()["datasets"][0]["consumed"] == at_a + 400 - len(from_b)


def test_named_mix_refuses_a_state_with_other_sources(two_sources):
    a, b = two_sources
    named = lambda names: MixedStream(  # noqa: E731
        [PackedStream(a, 7, wrap=True), PackedStream(b, 7, wrap=True)], [0.5, 0.5], names=names)
    state = named(["a", "b"]).state_dict()
    with pytest.raises(UserError, match="sources"):
        named(["b", "a"]).load_state_dict(state)
