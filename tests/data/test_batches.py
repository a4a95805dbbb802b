"""Token ids are checked against the model's vocabulary before training (lit_gpt/data/batches.py),
by a scan of the chunk files, whatever manifest.json records."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from lit_gpt.errors import UserError
from lit_gpt.pretrain import PretrainArgs
from lit_gpt.data import MixedStream, PackedStream
from lit_gpt.data import batches as pretrain_data
from lit_gpt.pretrain.cli import main as pretrain_main
from lit_gpt.data.batches import check_token_ids, open_stream, scan_token_range
from lit_gpt.pretrain.train import plan_run
from tests.pretrain_helpers import BLOCK, make_tokenizer, tiny_settings, to_argv


MODEL_VOCAB = 64  # the 49-token test tokenizer with [MASK], padded to a multiple of 64


def chunk(path: Path, tokens, dtype_code: int = 8, dtype=np.uint16) -> Path:
    """A chunk file written here from SPEC §4: 7-byte magic, uint64 version 1, uint8 dtype code, uint64 size."""
    tokens = np.asarray(tokens, dtype=dtype)
    path.write_bytes(b"LITPKDS" + struct.pack("<QBQ", 1, dtype_code, tokens.size) + tokens.tobytes())
    return path


def corpus(folder: Path, bad_file: str = "", bad_id: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in ("c4_0000000000.bin", "c4_0000000001.bin", "validation_0000000000.bin"):
        tokens = rng.integers(3, 48, size=(BLOCK + 1) * 8)
        if name == bad_file:
            tokens[-5] = bad_id  # late in the file: found only by reading it whole
        chunk(folder / name, tokens)
    return folder


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return make_tokenizer(tmp_path_factory.mktemp("tok"))


def settings(data: Path, tokenizer: Path, out: Path, **changes) -> dict:
    return tiny_settings(data, tokenizer, out, **changes)


def test_an_out_of_vocabulary_id_stops_the_run_with_one_line(tmp_path, tokenizer, capsys):
    data = corpus(tmp_path / "data", bad_file="c4_0000000001.bin", bad_id=70)
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_:
        pretrain_main(to_argv(settings(data, tokenizer, out)))
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert "c4_0000000001.bin" in err and "token id 70" in err and f"vocabulary of {MODEL_VOCAB}" in err
    assert not out.exists()  # nothing trained, nothing written


def test_the_validation_files_are_checked_too(tmp_path, tokenizer):
    data = corpus(tmp_path / "data", bad_file="validation_0000000000.bin", bad_id=MODEL_VOCAB)
    with pytest.raises(UserError, match=rf"validation_0000000000.bin holds token id {MODEL_VOCAB}\b"):
        plan_run(PretrainArgs(**settings(data, tokenizer, tmp_path / "out")))
    # ids up to vocab_size - 1 are fine
    data = corpus(tmp_path / "ok", bad_file="validation_0000000000.bin", bad_id=MODEL_VOCAB - 1)
    plan_run(PretrainArgs(**settings(data, tokenizer, tmp_path / "out2")))


def test_a_manifest_understating_the_largest_id_is_not_trusted(tmp_path, monkeypatch):
    """The chunks are read, whatever manifest.json records: a recorded maximum below the real one
    would otherwise let the run stop mid-way with an IndexError in the embedding."""
    data = corpus(tmp_path / "data", bad_file="c4_0000000001.bin", bad_id=MODEL_VOCAB + 5)
    manifest = {"sources": {
        "c4-train.00000-of-01024.json.gz": {"split": "train", "chunk_prefix": "c4", "files": 2, "max_token_id": 10},
    }}
    (data / "manifest.json").write_text(json.dumps(manifest))
    scanned = []
    real_scan = pretrain_data.scan_token_range
    monkeypatch.setattr(pretrain_data, "scan_token_range", lambda path: scanned.append(path.name) or real_scan(path))
    with pytest.raises(UserError, match=rf"c4_0000000001.bin holds token id {MODEL_VOCAB + 5}\b"):
        check_token_ids(data, "c4", MODEL_VOCAB, "train_data_dir")
    assert scanned == ["c4_0000000000.bin", "c4_0000000001.bin"]


@pytest.mark.parametrize("dtype_code, dtype", [(8, np.uint16), (4, np.int32), (3, np.int16)])
def test_scan_matches_a_plain_read(tmp_path, dtype_code, dtype):
    tokens = np.random.default_rng(1).integers(0, 30000, size=101).astype(dtype)
    tokens[50] = -3 if np.dtype(dtype).kind == "i" else tokens[50]
    path = chunk(tmp_path / "c4_0000000000.bin", tokens, dtype_code, dtype)
    raw = path.read_bytes()[24:]
    values = [int.from_bytes(raw[i:i + np.dtype(dtype).itemsize], "little", signed=np.dtype(dtype).kind == "i")
              for i in range(0, len(raw), np.dtype(dtype).itemsize)]
    assert scan_token_range(path) == (min(values), max(values))
    if min(values) < 0:
        with pytest.raises(UserError, match=r"holds token id -3"):
            check_token_ids(tmp_path, "c4", 32000, "train_data_dir")


def test_prepare_records_each_sources_maximum_token_id(tmp_path, tokenizer):
    from lit_gpt.prepare.pipeline import prepare

    source = tmp_path / "src"
    source.mkdir()
    (source / "c4-train.00000-of-01024.json").write_text(
        "\n".join(json.dumps({"text": " ".join(f"w{(i * 7 + j) % 20}" for j in range(30))}) for i in range(10)) + "\n"
    )
    (source / "c4-validation.00000-of-00008.json").write_text(json.dumps({"text": "w44 w3"}) + "\n")
    destination = tmp_path / "bin"
    prepare(source, destination, tokenizer, chunk_size=64, num_workers=1, log=lambda *a: None)
    manifest = json.loads((destination / "manifest.json").read_text())
    for key, entry in manifest["sources"].items():
        files = sorted(destination.glob(f"{entry['chunk_prefix']}_*.bin"))
        assert len(files) == entry["files"] > 0
        largest = max(max(struct.unpack(f"<{(len(raw) - 24) // 2}H", raw[24:]))
                      for raw in (f.read_bytes() for f in files))
        assert entry["max_token_id"] == largest, key
    assert manifest["sources"]["c4-validation.00000-of-00008.json"]["max_token_id"] == 47  # w44


def test_open_stream_by_prefix(two_sources, tmp_path):
    options = dict(seed=0, shuffle=True, wrap=True, setting="--train_prefix")
    ds = open_stream(tmp_path, "a", 7, **options)
    assert isinstance(ds, PackedStream) and ds.blocks_per_epoch == 100
    mixed = open_stream(tmp_path, "a:3,b:1", 7, **options)
    assert isinstance(mixed, MixedStream) and mixed.weights.tolist() == [0.75, 0.25]
