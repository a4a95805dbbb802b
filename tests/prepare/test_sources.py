"""Every source format gives the chunk bytes of the same texts in .json.gz; bad files are named;
named sources share a destination; a run split over shards equals a one-machine run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lit_gpt.prepare.pipeline import PrepareError, find_sources, prepare
from tests.prepare.helpers import DOCS, TRICKY, c4_lines, quiet, run_in_process, write_lines
from tools.sample_corpus import train_bpe_tokenizer

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
zstandard = pytest.importorskip("zstandard")

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "data_process" / "prepare_c4.py"
TEXTS = DOCS + TRICKY


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenizer")
    train_bpe_tokenizer(TEXTS * 10, out, vocab_size=400)
    return out


def chunks(dst: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(dst.glob("*.bin"))}


def reference(tmp_path, tokenizer_dir, texts=TEXTS, name="corpus") -> dict:
    """The chunks of `texts` as one .json.gz file named `name`."""
    src, dst = tmp_path / "ref_src", tmp_path / "ref_dst"
    write_lines(src / f"{name}.json.gz", c4_lines(texts))
    prepare(src, dst, tokenizer_dir, chunk_size=64, num_workers=1, train_pattern="*", log=quiet)
    return chunks(dst)


def jsonl_zst(path: Path, texts, frames: int = 1):
    lines = [line + "\n" for line in c4_lines(texts)]
    step = -(-len(lines) // frames)
    blob = b"".join(zstandard.ZstdCompressor().compress("".join(lines[i:i + step]).encode())
                    for i in range(0, len(lines), step))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(blob)
    return blob


def parquet(path: Path, texts, key="text", row_group_size=4, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.table({key: texts, "id": list(range(len(texts))), **columns})
    pq.write_table(table, path, row_group_size=row_group_size)


@pytest.mark.parametrize("fmt", ["json", "jsonl", "jsonl.gz", "jsonl.zst", "zst-frames", "parquet", "arrow",
                                 "arrow-file", "save_to_disk"])
def test_every_format_gives_the_chunks_of_the_same_texts_in_json_gz(tmp_path, tokenizer_dir, fmt):
    want = reference(tmp_path, tokenizer_dir)
    src, dst = tmp_path / "src", tmp_path / "dst"
    if fmt in ("json", "jsonl"):
        write_lines(src / f"corpus.{fmt}", c4_lines(TEXTS))
    elif fmt == "jsonl.gz":
        write_lines(src / "corpus.jsonl.gz", c4_lines(TEXTS))
    elif fmt in ("jsonl.zst", "zst-frames"):
        jsonl_zst(src / "corpus.jsonl.zst", TEXTS, frames=1 if fmt == "jsonl.zst" else 5)
    elif fmt == "parquet":
        parquet(src / "corpus.parquet", TEXTS)
    elif fmt in ("arrow", "arrow-file"):
        src.mkdir()
        table = pa.table({"text": TEXTS})
        with pa.OSFile(str(src / "corpus.arrow"), "wb") as sink:
            new = pa.ipc.new_stream if fmt == "arrow" else pa.ipc.new_file
            with new(sink, table.schema) as writer:
                for batch in table.to_batches(max_chunksize=5):
                    writer.write_batch(batch)
    else:
        datasets = pytest.importorskip("datasets")
        datasets.disable_progress_bars()
        datasets.DatasetDict({"train": datasets.Dataset.from_dict({"text": TEXTS}),
                              "validation": datasets.Dataset.from_dict({"text": TEXTS[:3]})}).save_to_disk(str(src))
        summary = prepare(src, dst, tokenizer_dir, chunk_size=64, num_workers=1, log=quiet)
        # datasets' own state.json and dataset_info.json beside the .arrow files are no sources
        assert summary.sources_done == 2 and summary.skipped_lines == 0
        got = chunks(dst)
        train = {k.replace("c4_train_data-00000-of-00001", "c4_corpus"): v for k, v in got.items() if k.startswith("c4_")}
        assert train == want
        assert {k.rsplit("_", 1)[0] for k in got} == {"c4_train_data-00000-of-00001",
                                                      "validation_validation_data-00000-of-00001"}
        return
    prepare(src, dst, tokenizer_dir, chunk_size=64, num_workers=1, train_pattern="corpus.*", log=quiet)
    assert chunks(dst) == want


def test_text_key_names_the_field_and_the_column(tmp_path, tokenizer_dir):
    want = reference(tmp_path, tokenizer_dir)
    src = tmp_path / "src"
    parquet(src / "corpus.parquet", TEXTS, key="content")
    prepare(src, tmp_path / "pq", tokenizer_dir, chunk_size=64, num_workers=1, train_pattern="*", text_key="content",
            log=quiet)
    assert chunks(tmp_path / "pq") == want
    with pytest.raises(PrepareError, match=r"corpus.parquet: no 'text' column \(columns: content, id\)"):
        prepare(src, tmp_path / "pq2", tokenizer_dir, chunk_size=64, num_workers=1, train_pattern="*", log=quiet)
    assert not chunks(tmp_path / "pq2")


def test_empty_row_groups_and_nulls(tmp_path, tokenizer_dir):
    want = reference(tmp_path, tokenizer_dir, texts=TEXTS[:6])
    src = tmp_path / "src"
    src.mkdir()
    schema = pa.schema([("text", pa.string())])
    with pq.ParquetWriter(src / "corpus.parquet", schema) as writer:
        writer.write_table(pa.table({"text": TEXTS[:3]}, schema=schema))
        writer.write_table(pa.table({"text": []}, schema=schema))  # an empty row group
        writer.write_table(pa.table({"text": TEXTS[3:6] + [None]}, schema=schema))
    logged = []
    summary = prepare(src, tmp_path / "dst", tokenizer_dir, chunk_size=64, num_workers=1, train_pattern="*",
                      log=logged.append)
    assert summary.documents == 6 and summary.skipped_lines == 1
    assert any("corpus.parquet:7: 'text' is null, not a string, skipped" in line for line in logged)
    assert chunks(tmp_path / "dst") == want


@pytest.mark.parametrize("case", ["truncated parquet", "corrupt zst", "truncated zst", "non-string column",
                                  "missing field strict", "non-string field strict", "nested brackets strict"])
def test_bad_files_are_one_line_naming_file_and_row_exit_2_nothing_written(tmp_path, tokenizer_dir, case):
    src, dst = tmp_path / "src", tmp_path / "dst"
    args = ["--train_pattern", "corpus.*"]
    if case == "truncated parquet":
        parquet(src / "corpus.parquet", TEXTS * 20)
        data = (src / "corpus.parquet").read_bytes()
        (src / "corpus.parquet").write_bytes(data[: len(data) // 2])
        want = "corpus.parquet: unreadable Parquet"
    elif case in ("corrupt zst", "truncated zst"):
        blob = jsonl_zst(src / "corpus.jsonl.zst", TEXTS * 50)
        bad = blob[:40] + bytes(60) + blob[100:] if case == "corrupt zst" else blob[: len(blob) // 2]
        (src / "corpus.jsonl.zst").write_bytes(bad)
        want = "corpus.jsonl.zst: corrupt zstd"
    elif case == "non-string column":
        parquet(src / "corpus.parquet", list(range(len(TEXTS))))
        want = "corpus.parquet: column 'text' holds int64, not strings"
    elif case == "missing field strict":
        write_lines(src / "corpus.jsonl", c4_lines(["ok"]) + ['{"content": "x"}'])
        args += ["--strict"]
        want = "corpus.jsonl:2: no 'text' field (--strict)"
    elif case == "non-string field strict":
        write_lines(src / "corpus.jsonl", c4_lines(["ok"]) + ['{"text": ["a"]}'])
        args += ["--strict"]
        want = "corpus.jsonl:2: 'text' is a list, not a string (--strict)"
    else:
        write_lines(src / "corpus.jsonl", c4_lines(["ok"]) + ["[" * 200_000 + "]" * 200_000])
        args += ["--strict"]
        want = "corpus.jsonl:2: malformed JSON"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--source_path", str(src), "--destination_path", str(dst),
                           "--tokenizer_dir", str(tokenizer_dir), "--chunk_size", "64", "--num_workers", "1", *args],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and want in lines[0], proc.stderr
    assert not list(dst.glob("*.bin")) and not list(dst.glob(".*.tmp"))


@pytest.mark.parametrize("stdlib_json", [False, True])
def test_deeply_nested_json_is_a_malformed_record(tmp_path, tokenizer_dir, stdlib_json, monkeypatch):
    import lit_gpt.prepare.sources as sources

    if stdlib_json:
        monkeypatch.setattr(sources, "_json_loads", json.loads)
        monkeypatch.setattr(sources, "_STDLIB_JSON", True)
    src = tmp_path / "src"
    write_lines(src / "c4-train.00000-of-00001.json", c4_lines(["first"]) + ["[" * 200_000 + "]" * 200_000]
                + c4_lines(["last"]))
    logged = []
    summary = prepare(src, tmp_path / "dst", tokenizer_dir, chunk_size=64, num_workers=1, log=logged.append)
    assert summary.documents == 2 and summary.skipped_lines == 1
    assert any(":2: malformed JSON" in line for line in logged)


def test_command_line_refusals_before_any_work(tmp_path, tokenizer_dir, capsys):
    src = tmp_path / "src"
    write_lines(src / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    (src / "c4-train.00001-of-00002.json.gz").symlink_to(tmp_path / "gone.json.gz")
    good = tmp_path / "good"
    write_lines(good / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    cases = {
        "same prefixes": ([good, "--train_prefix", "c4", "--val_prefix", "c4"], "both 'c4'"),
        "huge chunk": ([good, "--chunk_size", "10000000000000"], "--chunk_size 10000000000000"),
        "dangling symlink": ([src], "c4-train.00001-of-00002.json.gz is a symbolic link to"),
        "bad shard": ([good, "--num_shards", "2", "--shard_index", "2"], "--shard_index"),
    }
    for index, (name, (args, want)) in enumerate(cases.items()):
        dst = tmp_path / f"dst_{name.replace(' ', '_')}"
        argv = ["--source_path", *map(str, args), "--destination_path", str(dst), "--tokenizer_dir",
                str(tokenizer_dir), "--num_workers", "1"]
        if index == 0:  # the script itself, as a user runs it
            proc = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True,
                                  env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
            code, stderr = proc.returncode, proc.stderr
        else:  # the same entry point in this process
            code, stderr = run_in_process(argv, capsys)
        lines = stderr.strip().splitlines()
        assert code == 2 and len(lines) == 1 and want in lines[0], (name, stderr)
        assert not dst.exists() or not any(dst.iterdir()), name


def snapshot(dst: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(dst.iterdir()) if not p.name.startswith(".")}


def test_named_sources_share_a_destination_and_the_manifest(tmp_path, tokenizer_dir):
    slim, star, dst = tmp_path / "slim", tmp_path / "star", tmp_path / "dst"
    jsonl_zst(slim / "train" / "chunk1" / "example_train_0.jsonl.zst", DOCS)
    jsonl_zst(slim / "train" / "chunk2" / "example_train_0.jsonl.zst", DOCS[::-1])  # the same name, elsewhere
    jsonl_zst(slim / "validation" / "chunk1" / "example_holdout_0.jsonl.zst", DOCS[:2])
    parquet(star / "python" / "train-00000-of-00001.parquet", TRICKY, key="content")
    prepare(slim, dst, tokenizer_dir, chunk_size=64, num_workers=1, train_prefix="slim", val_prefix="validation",
            train_pattern="train/*/*.jsonl.zst", val_pattern="validation/*/*.jsonl.zst", log=quiet)
    prepare(star, dst, tokenizer_dir, chunk_size=64, num_workers=1, train_prefix="star", val_prefix="heldout_star",
            train_pattern="*.parquet", text_key="content", log=quiet)
    sources = json.loads((dst / "manifest.json").read_text())["sources"]
    assert {k: (v["prefix"], v["split"]) for k, v in sources.items()} == {
        "train/chunk1/example_train_0.jsonl.zst": ("slim", "train"),
        "train/chunk2/example_train_0.jsonl.zst": ("slim", "train"),
        "validation/chunk1/example_holdout_0.jsonl.zst": ("validation", "validation"),
        "train-00000-of-00001.parquet": ("star", "train"),
    }
    # (lit_gpt.data.batches.TrainBatches: the trainer reads each prefix's files)
    names = {p.name.rsplit("_", 1)[0] for p in dst.glob("*.bin")}
    assert names == {"slim_train_chunk1_example_train_0", "slim_train_chunk2_example_train_0",
                     "validation_validation_chunk1_example_holdout_0", "star_train-00000-of-00001"}
    # A prefix that starts a recorded one would mix their globs.
    with pytest.raises(PrepareError, match="one starts the other"):
        prepare(star, dst, tokenizer_dir, chunk_size=64, num_workers=1, train_prefix="sli", val_prefix="x",
                train_pattern="*.parquet", text_key="content", log=quiet)


def test_shards_together_equal_one_machine_byte_for_byte(tmp_path, tokenizer_dir):
    src = tmp_path / "src"
    for i in range(5):
        write_lines(src / f"c4-train.{i:05d}-of-00005.json.gz", c4_lines(DOCS[i:] + TRICKY[i::3]))
    parquet(src / "c4-validation.00000-of-00001.parquet", DOCS)
    one = tmp_path / "one"
    prepare(src, one, tokenizer_dir, chunk_size=64, num_workers=1, log=quiet)
    many = tmp_path / "many"
    logged = []
    for index in (2, 0, 1):  # any order; each shard merges what is there when it ends
        prepare(src, many, tokenizer_dir, chunk_size=64, num_workers=1, num_shards=3, shard_index=index,
                log=logged.append)
    assert "2 shards not finished yet" in logged[0] and "holds every shard's files" in logged[-1]
    assert snapshot(many) == snapshot(one)
    assert not list(many.glob(".manifest.shard-*"))
    # A shard re-run skips its done files.
    summary = prepare(src, many, tokenizer_dir, chunk_size=64, num_workers=1, num_shards=3, shard_index=1, log=quiet)
    assert summary.sources_done == 0 and summary.sources_skipped == 2
    assert snapshot(many) == snapshot(one)


def test_merge_step_completes_the_manifest(tmp_path, tokenizer_dir, monkeypatch):
    """Where locks do not work the shards' merges may race: `--merge` after the last shard fixes it."""
    import lit_gpt.prepare.manifest as manifest

    src = tmp_path / "src"
    for i in range(4):
        write_lines(src / f"c4-train.{i:05d}-of-00004.json.gz", c4_lines(DOCS[i:]))
    one, many = tmp_path / "one", tmp_path / "many"
    prepare(src, one, tokenizer_dir, chunk_size=64, num_workers=1, log=quiet)
    monkeypatch.setattr(manifest, "merge_parts", lambda destination: (0, 0, 2))  # a shard that never merged
    for index in range(2):
        prepare(src, many, tokenizer_dir, chunk_size=64, num_workers=1, num_shards=2, shard_index=index, log=quiet)
    monkeypatch.undo()
    assert not (many / "manifest.json").exists()
    proc = subprocess.run([sys.executable, str(SCRIPT), "--destination_path", str(many), "--merge"],
                          capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert proc.returncode == 0 and "merged 4 source files" in proc.stdout, proc.stderr
    assert snapshot(many) == snapshot(one)


def test_source_search_is_recursive(tmp_path):
    src = tmp_path / "c4"
    write_lines(src / "c4-train.00000-of-00003.json.gz", ["{}"])
    write_lines(src / "a" / "c4-train.00001-of-00003.json.gz", ["{}"])
    write_lines(src / "a" / "b" / "c4-validation.00000-of-00001.json", ["{}"])
    write_lines(src / "a" / "b" / "c4-validation.00000-of-00001.json.gz", ["{}"])  # the gzip file wins
    write_lines(src / ".cache" / "c4-train.00002-of-00003.json.gz", ["{}"])  # hidden: left out
    write_lines(src / "out" / "manifest.json", ["{}"], gz=False)  # the destination: left out
    write_lines(src / "out" / "c4-train.00002-of-00003.json", ["{}"], gz=False)
    found = find_sources(src, src / "out")
    assert [(s.path.relative_to(src).as_posix(), s.split) for s in found] == [
        ("c4-train.00000-of-00003.json.gz", "train"), ("a/c4-train.00001-of-00003.json.gz", "train"),
        ("a/b/c4-validation.00000-of-00001.json.gz", "validation")]
    write_lines(src / "other" / "c4-train.00001-of-00003.json.gz", ["{}"])
    with pytest.raises(PrepareError, match=r"c4-train.00001-of-00003.json.gz is in a/ and other/"):
        find_sources(src, src / "out")


def test_an_unknown_split_is_refused_naming_it(tmp_path):
    """From Python as on the command line: not a misleading "no files match" later."""
    write_lines(tmp_path / "c4-train.00000-of-01024.json", c4_lines(DOCS))
    with pytest.raises(PrepareError, match="--split must be one of all, train, validation; got 'bogus'"):
        find_sources(tmp_path, tmp_path / "out", split="bogus")
