"""data_process/prepare_c4.py: round trip against direct tokenizer calls, manifest, resume, bad input."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lit_gpt.prepare.pipeline import PrepareError, prepare
from tests.prepare.helpers import (DOCS, TRICKY, c4_lines, quiet, read_chunk, reference, run_in_process, snapshot,
                                   write_lines)

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "data_process" / "prepare_c4.py"


@pytest.fixture(scope="module")
def hf_tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def stream_of(dst: Path, chunk_prefix: str):
    files = sorted(dst.glob(f"{chunk_prefix}_*.bin"))
    return np.concatenate([read_chunk(f)[1] for f in files]), files


def expected_stream(tokenizer, texts):
    ids = []
    for text in texts:
        ids += tokenizer(text, split_special_tokens=True)["input_ids"] + [tokenizer.eos_token_id]
    return ids


def run_cli(*args, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(SCRIPT), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)


# ----------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("workers", [1, 2])
def test_round_trip_matches_direct_tokenizer_calls(tmp_path, tokenizer_dir, hf_tokenizer, workers):
    src, dst = tmp_path / "src", tmp_path / "dst"
    train_a = DOCS * 3
    train_b = list(reversed(DOCS))
    val = DOCS[:2]
    write_lines(src / "c4-train.00000-of-00002.json.gz", c4_lines(train_a))
    write_lines(src / "c4-train.00001-of-00002.json", c4_lines(train_b))
    write_lines(src / "c4-validation.00000-of-00001.json.gz", c4_lines(val))
    chunk_size = 37
    summary = prepare(src, dst, tokenizer_dir, chunk_size=chunk_size, num_workers=workers, log=quiet)
    assert summary.sources_done == 3 and summary.documents == len(train_a) + len(train_b) + len(val)

    eos = hf_tokenizer.eos_token_id
    for prefix, texts in [("c4_c4-train.00000-of-00002", train_a), ("c4_c4-train.00001-of-00002", train_b),
                          ("validation_c4-validation.00000-of-00001", val)]:
        stream, files = stream_of(dst, prefix)
        want = expected_stream(hf_tokenizer, texts)
        assert want[0] == hf_tokenizer.bos_token_id  # this tokenizer adds BOS, as LLaMA's does
        padding = len(files) * chunk_size - len(want)
        assert 0 <= padding < chunk_size
        assert stream.tolist() == want + [eos] * padding
        # Decoding each document's span gives the text back.
        cuts = np.flatnonzero(stream[: len(want)] == eos)
        spans = np.split(stream[: len(want)], cuts + 1)[:-1]
        assert [hf_tokenizer.decode(s, skip_special_tokens=True) for s in spans] == texts

    # Special-token strings inside a document are text: [MASK] never appears, EOS only between documents.
    stream, _ = stream_of(dst, "c4_c4-train.00000-of-00002")
    mask_id = hf_tokenizer.convert_tokens_to_ids("[MASK]")
    assert mask_id not in stream.tolist()
    assert np.count_nonzero(stream == eos) == len(train_a) + (len(stream) - len(expected_stream(hf_tokenizer, train_a)))
    assert all(read_chunk(f)[0] == 8 for f in dst.glob("*.bin"))  # uint16 below 65500 tokens
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["chunk_size"] == chunk_size and manifest["dtype"] == "uint16"
    assert manifest["tokenizer"]["vocab_size"] == len(hf_tokenizer)
    assert manifest["tokenizer"]["mask_id"] == hf_tokenizer.convert_tokens_to_ids("[MASK]")
    entry = manifest["sources"]["c4-train.00000-of-00002.json.gz"]
    assert entry["documents"] == len(train_a) and entry["split"] == "train"
    assert entry["tokens"] == len(expected_stream(hf_tokenizer, train_a)) and entry["skipped_lines"] == 0
    assert entry["files"] == len(list(dst.glob("c4_c4-train.00000-of-00002_*.bin")))
    assert not list(dst.glob(".*tmp"))


def sentencepiece_stream(model_file: Path, texts):
    """The reference: BOS + the sentencepiece library's own ids + EOS, one call per document."""
    import sentencepiece

    sp = sentencepiece.SentencePieceProcessor(model_file=str(model_file))
    return [i for text in texts for i in [sp.bos_id(), *sp.encode(text), sp.eos_id()]]


def test_llama_style_sentencepiece_tokenizer(tmp_path, llama_tokenizer_dir):
    """The realistic case: a 32000-token sentencepiece model gives the sentencepiece library's ids
    with BOS, as upstream; [MASK] becomes 32000."""
    tok_dir = llama_tokenizer_dir
    src, dst = tmp_path / "src", tmp_path / "dst"
    docs = DOCS + TRICKY  # through JSON, two worker processes and the word cache
    write_lines(src / "c4-train.00000-of-00002.json.gz", c4_lines(docs))
    write_lines(src / "c4-train.00001-of-00002.json.gz", c4_lines(docs[::-1]))
    prepare(src, dst, tok_dir, chunk_size=64, num_workers=2, log=quiet)
    for name, texts in [("00000", docs), ("00001", docs[::-1])]:
        stream, files = stream_of(dst, f"c4_c4-train.{name}-of-00002")
        want = sentencepiece_stream(tok_dir / "tokenizer.model", texts)
        assert want[0] == 1
        assert stream.tolist() == want + [2] * (len(files) * 64 - len(want))
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["tokenizer"]["mask_id"] == 32000 and manifest["tokenizer"]["eos_id"] == 2
    assert manifest["encoding"] == {"name": "default", "backend": "sentencepiece", "method": "word cache", "bos_added": True,
                                    "parse_special_tokens": False}


def test_malformed_lines_are_skipped_counted_and_reported(tmp_path, tokenizer_dir, hf_tokenizer):
    src, dst = tmp_path / "src", tmp_path / "dst"
    lines = c4_lines(["first"]) + ["{not json", '{"url": "no text"}', '{"text": 5}', "[1, 2]", ""] + c4_lines(["last"])
    write_lines(src / "c4-train.00000-of-00001.json.gz", lines)
    logged = []
    summary = prepare(src, dst, tokenizer_dir, chunk_size=16, num_workers=1, log=logged.append)
    assert summary.skipped_lines == 4 and summary.documents == 2
    warnings = [line for line in logged if line.startswith("warning")]
    assert [w.split(":")[2] for w in warnings] == ["2", "3", "4", "5"]  # line numbers, after the file name
    assert all("c4-train.00000-of-00001.json.gz" in w for w in warnings)
    stream, _ = stream_of(dst, "c4_c4-train.00000-of-00001")
    want = expected_stream(hf_tokenizer, ["first", "last"])
    assert stream[: len(want)].tolist() == want
    entry = json.loads((dst / "manifest.json").read_text())["sources"]["c4-train.00000-of-00001.json.gz"]
    assert entry["skipped_lines"] == 4


def test_unpaired_surrogates_are_skipped_without_orjson(tmp_path, tokenizer_dir, hf_tokenizer, monkeypatch):
    """json (unlike orjson) decodes "\\ud800" into a str no tokenizer accepts: that record is bad input."""
    import lit_gpt.prepare.sources as prepare_module

    monkeypatch.setattr(prepare_module, "_json_loads", json.loads)
    monkeypatch.setattr(prepare_module, "_STDLIB_JSON", True)
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_lines(src / "c4-train.00000-of-00001.json", c4_lines(["first", "bad \ud800 half", "last"]))
    logged = []
    summary = prepare(src, dst, tokenizer_dir, chunk_size=16, num_workers=1, log=logged.append)
    assert summary.skipped_lines == 1 and summary.documents == 2
    assert any(":2: 'text' holds an unpaired surrogate" in line for line in logged)
    stream, _ = stream_of(dst, "c4_c4-train.00000-of-00001")
    want = expected_stream(hf_tokenizer, ["first", "last"])
    assert stream[: len(want)].tolist() == want


def test_split_and_prefixes(tmp_path, tokenizer_dir):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_lines(src / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    write_lines(src / "c4-validation.00000-of-00001.json.gz", c4_lines(DOCS))
    write_lines(src / "extra.jsonl", c4_lines(DOCS))  # in no split by default: reported, not read
    write_lines(src / "more" / "deeper" / "c4-train.00001-of-00002.json.gz", c4_lines(DOCS))  # searched
    write_lines(src / ".hidden" / "c4-train.00009-of-00010.json.gz", c4_lines(DOCS))  # not searched
    logged = []
    prepare(src, tmp_path / "default", tokenizer_dir, split="train", chunk_size=64, num_workers=1, log=logged.append)
    assert [line for line in logged if "extra.jsonl" in line] == [
        f"not read: 1 files under {src} match neither --train_pattern 'c4-train.*' nor --val_pattern "
        "'c4-validation.*': extra.jsonl"]
    assert not list((tmp_path / "default").glob("*extra*"))
    prepare(src, dst, tokenizer_dir, split="train", chunk_size=64, num_workers=1, train_prefix="train",
            train_pattern="c4-train.*,extra.*", log=quiet)
    names = sorted(p.name for p in dst.glob("*.bin"))
    assert names and all(n.startswith("train_") for n in names)
    assert {n.rsplit("_", 1)[0] for n in names} == {"train_c4-train.00000-of-00001", "train_extra",
                                                    "train_c4-train.00001-of-00002"}
    with pytest.raises(PrepareError, match="one starts the other"):
        prepare(src, tmp_path / "d2", tokenizer_dir, train_prefix="val", val_prefix="validation", log=quiet)


# ----------------------------------------------------------------------------- resume and safety


def test_rerun_skips_completed_sources_and_overwrites_nothing(tmp_path, tokenizer_dir):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_lines(src / "c4-train.00000-of-00003.json.gz", c4_lines(DOCS))
    write_lines(src / "c4-train.00001-of-00003.json.gz", c4_lines(DOCS[::-1]))
    prepare(src, dst, tokenizer_dir, chunk_size=32, num_workers=2, log=quiet)
    before = snapshot(dst)
    manifest_before = json.loads((dst / "manifest.json").read_text())

    write_lines(src / "c4-train.00002-of-00003.json.gz", c4_lines(DOCS[:3]))
    summary = prepare(src, dst, tokenizer_dir, chunk_size=32, num_workers=2, log=quiet)
    assert summary.sources_skipped == 2 and summary.sources_done == 1
    after = snapshot(dst)
    for name, value in before.items():
        if name != "manifest.json":
            assert after[name] == value, f"{name} was rewritten"
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["sources"].keys() == manifest_before["sources"].keys() | {"c4-train.00002-of-00003.json.gz"}
    assert any(n.startswith("c4_c4-train.00002-of-00003_") for n in after)


def test_corrupt_gzip_fails_after_the_good_files_and_keeps_what_was_there(tmp_path, tokenizer_dir):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_lines(src / "c4-train.00000-of-00003.json.gz", c4_lines(DOCS))
    prepare(src, dst, tokenizer_dir, chunk_size=32, num_workers=1, log=quiet)
    before = snapshot(dst)
    good = gzip.compress("".join(line + "\n" for line in c4_lines(DOCS * 50)).encode())
    (src / "c4-train.00001-of-00003.json.gz").write_bytes(good[: len(good) // 2])  # truncated archive
    write_lines(src / "c4-train.00002-of-00003.json.gz", c4_lines(DOCS))
    with pytest.raises(PrepareError, match=r"c4-train.00001-of-00003.json.gz: corrupt gzip") as err:
        prepare(src, dst, tokenizer_dir, chunk_size=32, num_workers=2, log=quiet)
    assert "1 other source files were prepared" in str(err.value)
    after = snapshot(dst)
    for name, value in before.items():
        if name != "manifest.json":
            assert after[name] == value
    assert not any(n.startswith("c4_c4-train.00001") for n in after)  # the failed source leaves no chunks
    sources = json.loads((dst / "manifest.json").read_text())["sources"]
    assert sorted(sources) == ["c4-train.00000-of-00003.json.gz", "c4-train.00002-of-00003.json.gz"]


def test_refuses_foreign_chunks_without_manifest(tmp_path, tokenizer_dir):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_lines(src / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    dst.mkdir()
    (dst / "c4_0000000000.bin").write_bytes(b"upstream chunk")
    with pytest.raises(PrepareError, match="no manifest.json"):
        prepare(src, dst, tokenizer_dir, num_workers=1, log=quiet)
    assert sorted(p.name for p in dst.iterdir()) == ["c4_0000000000.bin"]


# ----------------------------------------------------------------------------- the command line


def test_command_line_bad_inputs(tmp_path, tokenizer_dir, capsys):
    """Each bad input: exit code 2, one `error:` line naming the culprit, no traceback."""
    empty = tmp_path / "empty"
    empty.mkdir()
    nested = tmp_path / "c4_clone"
    write_lines(nested / "en" / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    write_lines(nested / "realnewslike" / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "c4-train.00000-of-00001.json.gz").write_bytes(b"this is not gzip")
    strict = tmp_path / "strict"
    write_lines(strict / "c4-train.00000-of-00001.json", c4_lines(["ok"]) + ["{broken"])
    good = tmp_path / "good"
    write_lines(good / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    cases = {
        "missing source": (["--source_path", tmp_path / "nope"], "nope"),
        "empty source": (["--source_path", empty], "no C4 files"),
        "one name in two subfolders": (["--source_path", nested], "is in en/ and realnewslike/"),
        "corrupt gzip": (["--source_path", corrupt], "corrupt gzip"),
        "strict": (["--source_path", strict, "--strict"], "c4-train.00000-of-00001.json:2: malformed JSON"),
        "unwritable destination": (["--source_path", good, "--destination_path", blocker / "dst"], "cannot write"),
        "missing tokenizer": (["--source_path", good, "--tokenizer_dir", tmp_path / "no_tok"], "no_tok"),
    }
    for index, (name, (args, want)) in enumerate(cases.items()):
        args = list(args)
        if "--destination_path" not in args:
            args += ["--destination_path", tmp_path / f"dst_{name.replace(' ', '_')}"]
        if "--tokenizer_dir" not in args:
            args += ["--tokenizer_dir", tokenizer_dir]
        args += ["--num_workers", "1"]
        if index == 0:  # the script itself, as a user runs it
            proc = run_cli(*args)
            _, stderr = proc.communicate(timeout=120)
            code = proc.returncode
        else:  # the same entry point in this process (an exception other than the one-line exit fails here)
            code, stderr = run_in_process(args, capsys)
        lines = stderr.strip().splitlines()
        assert code == 2, (name, stderr)
        assert "Traceback" not in stderr, name
        assert len(lines) == 1 and lines[0].startswith("error: ") and want in lines[0], (name, stderr)
    assert not any((tmp_path / "dst_corrupt_gzip").glob("*.bin"))


def test_command_line_success_and_checkpoint_dir_alias(tmp_path, tokenizer_dir):
    src = tmp_path / "src"
    write_lines(src / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    proc = run_cli("--source_path", src, "--destination_path", tmp_path / "dst", "--checkpoint_dir", tokenizer_dir,
                   "--chunk_size", 64)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert "prepared 1 source files" in stdout and f"{len(DOCS)} documents" in stdout
    assert list((tmp_path / "dst").glob("c4_c4-train.00000-of-00001_*.bin"))


def test_chunks_left_by_a_killed_run_are_replaced(tmp_path, tokenizer_dir, hf_tokenizer):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_lines(src / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    prepare(src, dst, tokenizer_dir, chunk_size=32, num_workers=1, log=quiet)
    good = {p.name: p.read_bytes() for p in dst.glob("*.bin")}
    # As if killed before recording the source: its entry is gone, a stray extra chunk is there.
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["sources"] = {}
    (dst / "manifest.json").write_text(json.dumps(manifest))
    (dst / "c4_c4-train.00000-of-00001_0000000999.bin").write_bytes(b"stale")
    prepare(src, dst, tokenizer_dir, chunk_size=32, num_workers=1, log=quiet)
    assert {p.name: p.read_bytes() for p in dst.glob("*.bin")} == good


# ----------------------------------------------------------------------------- encodings


def test_prepare_records_the_backend_and_parses_special_tokens_on_request(tmp_path, llama_tokenizer_dir, sp):
    """(Without --parse_special_tokens: test_prepare_c4.test_llama_style_sentencepiece_tokenizer.)"""
    from lit_gpt.prepare.pipeline import prepare

    src, dst = tmp_path / "src", tmp_path / "dst"
    texts = ["A page with </s> and <s> written out.", "plain", "  spaced  out  "]
    write_lines(src / "c4-train.00000-of-00001.json.gz", c4_lines(texts))
    prepare(src, dst, llama_tokenizer_dir, chunk_size=128, num_workers=1, parse_special_tokens=True,
            log=lambda line: None)
    (chunk,) = sorted(dst.glob("*.bin"))
    want = reference(sp, texts, parse_special_tokens=True)
    assert read_chunk(chunk)[1].tolist() == want + [2] * (128 - len(want))
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["encoding"] == {"name": "default", "backend": "sentencepiece", "method": "word cache", "bos_added": True,
                                    "parse_special_tokens": True}
    # A destination written one way refuses a run the other way.
    (src / "c4-train.00000-of-00001.json.gz").rename(src / "c4-train.00000-of-00002.json.gz")
    with pytest.raises(PrepareError, match="encoding.parse_special_tokens"):
        prepare(src, dst, llama_tokenizer_dir, chunk_size=128, num_workers=1, log=lambda line: None)


def test_prepare_with_the_upstream_encoding(tmp_path, upstream_dir, upstream_call, capsys):
    from lit_gpt.prepare.cli import main

    src, dst = tmp_path / "src", tmp_path / "dst"
    texts = ["   This starts with spaces.", "<s>start and </s> end", "plain text", "Ünïcödé  日本語"]
    write_lines(src / "c4-train.00000-of-00002.json.gz", c4_lines(texts))
    common = ["--source_path", str(src), "--destination_path", str(dst), "--tokenizer_dir", str(upstream_dir),
              "--chunk_size", "128", "--num_workers", "1"]
    main([*common, "--encoding", "upstream"])
    (chunk,) = sorted(dst.glob("*.bin"))
    want = upstream_call(texts)  # special tokens parsed: upstream's default
    assert read_chunk(chunk)[1].tolist() == want + [2] * (128 - len(want))
    manifest = json.loads((dst / "manifest.json").read_text())
    assert manifest["encoding"] == {"name": "upstream", "backend": "transformers legacy=False", "method": "rust batch",
                                    "bos_added": True, "parse_special_tokens": True}
    # Chunks of one encoding are never mixed with another's.
    write_lines(src / "c4-train.00001-of-00002.json.gz", c4_lines(texts))
    capsys.readouterr()
    with pytest.raises(SystemExit) as caught:
        main(common)
    message = capsys.readouterr().err
    assert caught.value.code == 2 and len(message.strip().splitlines()) == 1
    assert "encoding.backend='transformers legacy=False', this run has 'sentencepiece'" in message, message


def test_the_package_import_path_of_the_library_api_still_works(tmp_path):
    # `from lit_gpt.prepare import prepare, ...` was the import path before prepare became a package.
    import lit_gpt.prepare.pipeline as pipeline
    from lit_gpt.prepare import (DEFAULT_CHUNK_SIZE, MANIFEST, PrepareError as Error, Summary, find_sources,
                                 gunzip_files, iter_records, load_manifest, prepare as package_prepare)

    assert package_prepare is prepare and Error is PrepareError and Summary is pipeline.Summary
    assert (DEFAULT_CHUNK_SIZE, MANIFEST) == (4097 * 1024, "manifest.json")
    assert (find_sources, gunzip_files, iter_records, load_manifest) == (
        pipeline.find_sources, pipeline.gunzip_files, pipeline.iter_records, pipeline.load_manifest)
    with pytest.raises(AttributeError, match="no_such_name"):
        getattr(sys.modules["lit_gpt.prepare"], "no_such_name")
    # The command line still starts without the pipeline's imports (numpy, torch).
    probe = "import sys, lit_gpt.prepare.cli; print(sorted({'numpy', 'torch', 'lit_gpt.prepare.pipeline'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}).stdout
    assert out.strip() == "[]"
