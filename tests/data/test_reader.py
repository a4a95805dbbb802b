"""Packed chunk files: the byte format, header checks, exactly-once sharding, resume, mixing (the\nstreams the trainer reads by position)."""

import json
import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from lit_gpt.errors import UserError
from lit_gpt.data.batches import open_stream
from lit_gpt.data import (
    ChunkWriter,
    MixedStream,
    PackedDatasetError,
    PackedStream,
    find_chunk_files,
    read_header,
    write_chunk,
)


def hand_written_chunk(path: Path, tokens, code: int = 8, dtype="<u2", version: int = 1, magic=b"LITPKDS") -> Path:
    """The format spelled out byte by byte, independent of the code under test."""
    tokens = np.asarray(tokens, dtype=dtype)
    path.write_bytes(magic + struct.pack("<Q", version) + bytes([code]) + struct.pack("<Q", tokens.size) + tokens.tobytes())
    return path


def naive_blocks(paths, block_size):
    """Every full block of every file, read without the reader: tuples of ints."""
    blocks = []
    for path in paths:
        raw = Path(path).read_bytes()
        code, chunk_size = raw[15], struct.unpack("<Q", raw[16:24])[0]
        dtype = {8: "<u2", 4: "<i4"}[code]
        tokens = np.frombuffer(raw[24:], dtype=dtype)
        assert tokens.size == chunk_size
        n = block_size + 1
        blocks += [tuple(int(t) for t in tokens[i * n : (i + 1) * n]) for i in range(chunk_size // n)]
    return blocks


@pytest.fixture
def chunk_files(tmp_path):
    """Three files of unequal size whose every token is unique, so a block identifies itself."""
    sizes = [8 * 12, 8 * 5 + 3, 8 * 9]  # block_size 7 -> blocks of 8; the second has a 3-token tail
    paths, start = [], 1
    for i, size in enumerate(sizes):
        paths.append(hand_written_chunk(tmp_path / f"c4_{i:010d}.bin", np.arange(start, start + size)))
        start += size
    return paths


def rows(samples):
    return [tuple(int(t) for t in sample) for sample in samples]


# ----------------------------------------------------------------------------- format


def test_writer_produces_the_documented_bytes(tmp_path):
    tokens = np.array([1, 2, 3, 65000, 7], dtype=np.uint16)
    write_chunk(tmp_path / "ours.bin", tokens)
    hand_written_chunk(tmp_path / "reference.bin", tokens)
    assert (tmp_path / "ours.bin").read_bytes() == (tmp_path / "reference.bin").read_bytes()
    assert len((tmp_path / "ours.bin").read_bytes()) == 24 + 2 * 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ours.bin", "reference.bin"]  # no temporary left


def test_builder_packs_across_chunks_and_pads_the_last_with_the_separator(tmp_path):
    builder = ChunkWriter(tmp_path, "c4_doc", chunk_size=10, sep_token=2, dtype=np.uint16)
    pieces = [np.arange(100, 107), np.arange(200, 223), np.array([9])]
    for piece in pieces:
        builder.add_array(piece)
    assert builder.padding == 9
    files = builder.finish()
    assert [p.name for p in files] == [f"c4_doc_{i:010d}.bin" for i in range(4)]
    stream = np.concatenate([np.frombuffer(p.read_bytes()[24:], dtype="<u2") for p in files])
    expected = np.concatenate(pieces + [np.full(9, 2)])
    np.testing.assert_array_equal(stream, expected)
    assert all(p.read_bytes()[:7] == b"LITPKDS" and p.read_bytes()[15] == 8 for p in files)


def test_int32_tokens_for_large_vocabularies(tmp_path):
    hand_written_chunk(tmp_path / "big.bin", [70000, 1, 2, 3], code=4, dtype="<i4")
    ds = PackedStream([tmp_path / "big.bin"], block_size=3, shuffle=False)
    (block,) = list(ds)
    assert block.dtype == torch.int64 and block.tolist() == [70000, 1, 2, 3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(magic=b"NOTPKDS"), "magic"),
        (dict(version=2), "version 2"),
        (dict(code=9), "dtype code 9"),
    ],
)
def test_bad_headers_raise_naming_the_file(tmp_path, kwargs, message):
    path = hand_written_chunk(tmp_path / "bad.bin", range(16), **kwargs)
    with pytest.raises(PackedDatasetError, match=message) as err:
        PackedStream([path], block_size=3)
    assert str(path) in str(err.value)
    assert isinstance(err.value, UserError)


@pytest.mark.parametrize("code, dtype, name", [(6, "<f4", "float32"), (7, "<f8", "float64")])
def test_a_float_chunk_is_refused_naming_the_file(tmp_path, code, dtype, name):
    """Codes 6 and 7 are in the header's table, but floats are not token ids: never trained on."""
    path = hand_written_chunk(tmp_path / "c4_0000000000.bin", [1.5] * 16, code=code, dtype=dtype)
    with pytest.raises(PackedDatasetError, match=rf"holds {name} values \(dtype code {code}\)") as err:
        PackedStream([path], block_size=3)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_truncated_and_tiny_files_raise_naming_the_file(tmp_path):
    path = hand_written_chunk(tmp_path / "cut.bin", range(16))
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(PackedDatasetError, match="truncated") as err:
        read_header(path)
    assert str(path) in str(err.value)
    (tmp_path / "tiny.bin").write_bytes(b"LITP")
    with pytest.raises(PackedDatasetError, match="tiny.bin"):
        read_header(tmp_path / "tiny.bin")


def test_find_chunk_files(tmp_path, chunk_files):
    hand_written_chunk(tmp_path / "validation_0000000000.bin", range(8))
    (tmp_path / ".c4_0000000009.bin.tmp").write_bytes(b"partial")
    assert find_chunk_files(tmp_path, "c4") == chunk_files
    assert [p.name for p in find_chunk_files(tmp_path, "validation")] == ["validation_0000000000.bin"]
    with pytest.raises(PackedDatasetError, match=str(tmp_path)):
        find_chunk_files(tmp_path, "wiki")


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


def test_iteration_yields_sample_at_in_order(chunk_files):
    ds = PackedStream(chunk_files, 7, seed=5, num_processes=2, process_rank=1)
    iterated = rows(ds)
    assert iterated == rows(ds.sample_at(p) for p in range(ds.rank_blocks_per_epoch))
    assert ds.sample_at(ds.rank_blocks_per_epoch) is None


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


# ----------------------------------------------------------------------------- mixing


@pytest.fixture
def two_sources(tmp_path):
    a = [hand_written_chunk(tmp_path / f"a_{i}.bin", np.arange(1, 8 * 50 + 1) + 10_000 * i) for i in range(2)]
    b = [hand_written_chunk(tmp_path / "b_0.bin", np.arange(30_001, 30_001 + 8 * 40))]
    return a, b


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


def test_open_stream_by_prefix(two_sources, tmp_path):
    options = dict(seed=0, shuffle=True, wrap=True, setting="--train_prefix")
    ds = open_stream(tmp_path, "a", 7, **options)
    assert isinstance(ds, PackedStream) and ds.blocks_per_epoch == 100
    mixed = open_stream(tmp_path, "a:3,b:1", 7, **options)
    assert isinstance(mixed, MixedStream) and mixed.weights.tolist() == [0.75, 0.25]


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


# ----------------------------------------------------------------------------- mixing by position


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
