"""TinyLlama's `lit_gpt.compat.packed_dataset` API, called as TinyLlama / the upstream MEAP scripts call it.

The expected samples and bytes come from re-implementations, written here, of what TinyLlama's
classes do: files dealt out to shards, read `n_chunks` at a time, blocks permuted by one
`np.random.default_rng(seed)` per iterator, restarting at the first file; `random.Random(seed)`
choices for the mix; a 24-byte header and `{prefix}_{counter:010d}.bin` names for the builder.
"""

import random
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lit_gpt.data import PackedDatasetError, PackedStream
from lit_gpt.compat.packed_dataset import CombinedDataset, PackedDataset, PackedDatasetBuilder


def hand_written_chunk(path: Path, tokens, code: int = 8, dtype="<u2") -> Path:
    tokens = np.asarray(tokens, dtype=dtype)
    path.write_bytes(b"LITPKDS" + struct.pack("<Q", 1) + bytes([code]) + struct.pack("<Q", tokens.size) + tokens.tobytes())
    return path


def file_tokens(path) -> np.ndarray:
    raw = Path(path).read_bytes()
    assert raw[:7] == b"LITPKDS" and struct.unpack("<Q", raw[7:15])[0] == 1
    dtype = {8: "<u2", 4: "<i4"}[raw[15]]
    tokens = np.frombuffer(raw[24:], dtype=dtype)
    assert tokens.size == struct.unpack("<Q", raw[16:24])[0]
    return tokens


def upstream_reader(filenames, n_chunks, block_size, seed, shuffle, count, num_shards=1, shard_id=0):
    """The first `count` samples of one TinyLlama shard, as lists of ints."""
    usable = len(filenames) // num_shards * num_shards
    files = filenames[shard_id:usable:num_shards]
    rng = np.random.default_rng(seed)
    n_blocks = file_tokens(files[0]).size // block_size
    out, file_idx = [], 0
    while len(out) < count:
        if n_chunks > len(files) - file_idx:
            file_idx = 0
        group = [file_tokens(f) for f in files[file_idx : file_idx + n_chunks]]
        file_idx += n_chunks
        order = rng.permutation(n_chunks * n_blocks) if shuffle else range(n_chunks * n_blocks)
        for b in order:
            chunk, block = divmod(int(b), n_blocks)
            out.append(group[chunk][block * block_size : (block + 1) * block_size].tolist())
    return out[:count]


@pytest.fixture
def files(tmp_path):
    """Five chunk files of 30 tokens, every token unique so that a block names itself."""
    return [str(hand_written_chunk(tmp_path / f"c4_{i:010d}.bin", np.arange(100 * i, 100 * i + 30))) for i in range(5)]


def take(iterable, n):
    it = iter(iterable)
    return [next(it).tolist() for _ in range(n)]


def test_block_size_counts_the_tokens_read_positional_and_keyword(files):
    keyword = PackedDataset(files, n_chunks=1, block_size=7, shuffle=False)
    positional = PackedDataset(files, 1, 7, 12345, False)
    want = upstream_reader(files, 1, 7, 12345, False, 12)
    assert take(keyword, 12) == take(positional, 12) == want
    assert all(len(block) == 7 for block in want)
    assert want[:5] == [list(range(0, 7)), list(range(7, 14)), list(range(14, 21)), list(range(21, 28)),
                        list(range(100, 107))]  # 4 blocks per 30-token file, its 2-token tail unread


@pytest.mark.parametrize("n_chunks,shuffle,seed", [(2, False, 0), (2, True, 3), (1, True, 3407), (5, True, 7)])
def test_order_matches_tinyllama_and_never_ends(files, n_chunks, shuffle, seed):
    # 40 samples pass the end of the files several times: TinyLlama restarts at the first file
    # (with 5 files and n_chunks 2, the fifth file is never read).
    ds = PackedDataset(files, n_chunks, 6, seed=seed, shuffle=shuffle, wrap=False)
    assert take(ds, 40) == upstream_reader(files, n_chunks, 6, seed, shuffle, 40)


def test_files_are_dealt_out_to_processes(files):
    for rank in range(2):
        ds = PackedDataset(files, n_chunks=1, block_size=5, seed=11 + rank, shuffle=True, num_processes=2,
                           process_rank=rank)
        assert take(ds, 20) == upstream_reader(files, 1, 5, 11 + rank, True, 20, num_shards=2, shard_id=rank)


def test_dataloader_workers_are_shards_too(files):
    ds = PackedDataset(files, n_chunks=1, block_size=10, seed=5, shuffle=True)
    got = [row.tolist() for batch, _ in zip(DataLoader(ds, batch_size=3, num_workers=2), range(4)) for row in batch]
    # A DataLoader takes batches from its workers in turn.
    per_worker = [upstream_reader(files, 1, 10, 5, True, 6, num_shards=2, shard_id=w) for w in range(2)]
    want = per_worker[0][0:3] + per_worker[1][0:3] + per_worker[0][3:6] + per_worker[1][3:6]
    assert got == want


def test_the_upstream_meap_data_loader_runs_unchanged(files):
    """scitix/MEAP's create_dataloader, with its arguments (fabric replaced by a rank and a world size)."""
    seed, global_rank, world_size, block_size, batch_size = 3407, 0, 1, 6 + 1, 4
    filenames = sorted(files)
    random.Random(seed).shuffle(filenames)
    dataset = PackedDataset(filenames, n_chunks=1, block_size=block_size, shuffle=True, seed=seed + global_rank,
                            num_processes=world_size, process_rank=global_rank)
    combined = CombinedDataset(datasets=[dataset], seed=seed, weights=[1.0])
    batch = next(iter(DataLoader(combined, batch_size=batch_size, shuffle=False)))
    assert batch.shape == (batch_size, block_size) and batch.dtype == torch.int64
    assert batch.tolist() == upstream_reader(filenames, 1, block_size, seed, True, batch_size)


def test_combined_dataset_draws_like_tinyllama(tmp_path, files):
    other = [str(hand_written_chunk(tmp_path / f"wiki_{i}.bin", np.arange(5000 + 100 * i, 5000 + 100 * i + 30)))
             for i in range(2)]
    for weights in ([0.7, 0.3], None):
        rng = random.Random(42)
        sources = [iter(upstream_reader(files, 1, 6, 1, True, 100)), iter(upstream_reader(other, 1, 6, 2, True, 100))]
        want = [next(rng.choices(sources, weights=weights or [0.5, 0.5], k=1)[0]) for _ in range(60)]
        combined = CombinedDataset([PackedDataset(files, 1, 6, seed=1), PackedDataset(other, 1, 6, seed=2)], 42, weights)
        assert take(combined, 60) == want


def test_combined_dataset_ends_with_the_first_dataset_that_ends():
    """TinyLlama's iterator lets the StopIteration of an exhausted dataset end the mix."""
    rng, sources, want = random.Random(3), [iter([1, 2, 3]), iter([10, 20])], []
    while True:
        (source,) = rng.choices(sources, weights=[0.5, 0.5], k=1)
        try:
            want.append(next(source))
        except StopIteration:
            break
    # seed 3 draws from both and ends when the second, exhausted, is drawn again (not at the first's end)
    assert want == [1, 10, 2, 20]
    assert list(CombinedDataset([[1, 2, 3], [10, 20]], seed=3)) == want


@pytest.mark.parametrize("sizes", [[7, 23, 1], [10, 10], [30], []])
def test_builder_writes_tinyllama_files(tmp_path, sizes):
    chunk_size, sep = 10, 2
    builder = PackedDatasetBuilder(outdir=tmp_path, prefix="c4_0", chunk_size=chunk_size, sep_token=sep, dtype="auto",
                                   vocab_size=32000)
    arrays = [np.arange(100 * (i + 1), 100 * (i + 1) + n) for i, n in enumerate(sizes)]
    for arr in arrays:
        builder.add_array(np.array(arr, dtype=builder.dtype))
    builder.write_reminder()
    # TinyLlama: the stream cut into chunk_size pieces, the last padded with sep; a chunk is written
    # only when a further token needs room, so write_reminder always writes one (all sep if empty).
    stream = np.concatenate(arrays) if arrays else np.zeros(0, dtype=int)
    n_files = max(1, -(-stream.size // chunk_size))
    padded = np.concatenate([stream, np.full(n_files * chunk_size - stream.size, sep)])
    names = [f"c4_0_{i:010d}.bin" for i in range(n_files)]
    assert sorted(p.name for p in tmp_path.iterdir()) == names
    assert builder.filenames == [str(tmp_path / name) for name in names]
    for i, name in enumerate(names):
        expected = hand_written_chunk(tmp_path / "expected.bin", padded[i * chunk_size : (i + 1) * chunk_size])
        assert (tmp_path / name).read_bytes() == expected.read_bytes()
    (tmp_path / "expected.bin").unlink()


def test_builder_dtype_rules_and_bad_input(tmp_path):
    assert PackedDatasetBuilder(tmp_path, "a", 8, 2, vocab_size=32064).dtype == np.uint16
    assert PackedDatasetBuilder(tmp_path, "a", 8, 2, vocab_size=65500).dtype == np.int32
    assert PackedDatasetBuilder(tmp_path, "a", 8, 2, np.int32).dtype == np.int32
    with pytest.raises(ValueError, match="vocab_size cannot be None"):
        PackedDatasetBuilder(tmp_path, "a", 8, 2)
    builder = PackedDatasetBuilder(tmp_path, "a", 8, 2, vocab_size=100)
    with pytest.raises(ValueError, match="do not fit the chunk dtype uint16"):
        builder.add_array(np.array([1, 70000]))  # TinyLlama would store 70000 as 4464


@pytest.mark.parametrize("chunk_size", [0, -3, True, 2.5, "10", None])
def test_builder_refuses_a_chunk_size_that_is_not_a_positive_integer(tmp_path, chunk_size):
    with pytest.raises(ValueError, match=f"chunk_size must be a positive integer, got {chunk_size!r}"):
        PackedDatasetBuilder(tmp_path, "a", chunk_size, 2, vocab_size=100)
    assert not list(tmp_path.iterdir())


def test_builder_takes_a_numpy_integer_chunk_size(tmp_path):
    builder = PackedDatasetBuilder(tmp_path, "a", np.int64(4), 2, vocab_size=100)
    builder.add_array(np.arange(6))
    builder.write_reminder()
    assert [file_tokens(f).tolist() for f in builder.filenames] == [[0, 1, 2, 3], [4, 5, 2, 2]]


def test_builder_files_read_in_the_trainer_and_back(tmp_path):
    builder = PackedDatasetBuilder(tmp_path, "c4", 16, 0, vocab_size=1000)
    builder.add_array(np.arange(1, 40))
    builder.write_reminder()
    trainer = PackedStream(builder.filenames, block_size=7, shuffle=False)  # the trainer's T: reads T + 1
    compat = PackedDataset(builder.filenames, n_chunks=1, block_size=8, shuffle=False)
    assert [trainer.sample_at(p).tolist() for p in range(6)] == take(compat, 6)


def test_bad_files_and_arguments_name_the_problem(tmp_path, files):
    odd = hand_written_chunk(tmp_path / "c4_odd.bin", np.arange(40))
    with pytest.raises(PackedDatasetError, match="c4_odd.bin holds 40"):
        PackedDataset(files + [str(odd)], 1, 6)
    with pytest.raises(PackedDatasetError, match="fewer than one block"):
        PackedDataset(files, 1, 31)
    with pytest.raises(PackedDatasetError, match="fewer than n_chunks=3"):
        iter(PackedDataset(files, 3, 6, num_processes=2))
    with pytest.raises(ValueError, match="block_size"):
        PackedDataset(files, 1, 0)
    with pytest.raises(ValueError, match="2 weights for 1 datasets"):
        CombinedDataset([PackedDataset(files, 1, 6)], 0, [0.5, 0.5])
