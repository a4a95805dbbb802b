"""data_process/prepare_c4.py: round trip against direct tokenizer calls, manifest, resume, bad input."""

import gzip
import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lit_gpt.prepare.pipeline import PrepareError, gunzip_files, prepare
from tools.sample_corpus import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "data_process" / "prepare_c4.py"

DOCS = [
    "The capital of Veldoria is Marnet. Marnet was founded in 1432.",
    "",
    "  Leading spaces, tabs\tand\nnew lines.\n\n",
    "naïve café — ünïcödé ✓ 日本語",
    "A longer document. " * 40,
    "Short.",
    "A web page about BERT: the [MASK] token, and </s> or <s> written out, stay text.",
]


# Texts where tokenizers differ: whitespace runs, marks, digits, scripts, emoji, special-token strings.
TRICKY = [
    "", " ", "  ", "\n", "\t", "Hello world!", "  two leading spaces", "trailing spaces   ", "a  b   c    d     e",
    " " * 40 + "x" + " " * 41, "tabs\t\tand\t\t\tmore\t", "new\nlines\n\n\nand\r\nCRLF\r", " \n \t \u3000 \u00a0 ",
    "naïve café — ünïcödé, Ångström, ﬁ ligature, e\u0301 combining", "emoji 🦙🤖, ZWJ 👩‍👩‍👧, flags 🇩🇪, skin 👍🏽",
    "日本語のテキスト、中文字符 and 한국어; עברית and العربية", "Zalgo: Z̵̡̢a̷͎l̸g̶o̵", "\x00\x01\x0b\x0c\x7f\u2028\u2029\ufeff",
    "digits 3.14159 and 2,000,000 and 0x1F 007 1st 2nd", "12345678901234567890", "literal </s> and <s> and <unk>",
    "[MASK]", "a[MASK]b [MASK] [MASK][MASK] </s></s>", "<0x0A> <0xFF>", "▁", "▁▁▁", "▁already ▁marked▁▁ words ▁",
    " ▁ ▁▁ ▁", "supercalifragilisticexpialidocious" * 20, "x" * 5000, "ab" * 3000, "https://example.com/a?b=c&d=e#f",
    "def f(x):\n    return x ** 2  # comment\n", "{\"json\": [1, 2, 3]}", "C'est l'été. Don't, can't, won't.",
    "Mr. O'Neil paid $1,234.56 (approx. €1.100) on 2019-04-25T12:57:54Z.",
]


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenizer")
    texts = DOCS * 20 + ["The grass is green. The sky is blue. The pass key is 12345."] * 20
    train_bpe_tokenizer(texts, out, vocab_size=400)
    return out


@pytest.fixture(scope="module")
def hf_tokenizer(tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tokenizer_dir))


def write_lines(path: Path, lines, gz=None):
    data = "".join(line + "\n" for line in lines).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz if gz is not None else path.name.endswith(".gz"):
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)
    return path


def c4_lines(texts):
    return [json.dumps({"text": t, "timestamp": "2019-04-25T12:57:54Z", "url": f"https://x.invalid/{i}"})
            for i, t in enumerate(texts)]


def read_chunk(path: Path):
    """Parses a chunk file by hand: (dtype code, tokens)."""
    raw = path.read_bytes()
    assert raw[:7] == b"LITPKDS" and struct.unpack("<Q", raw[7:15])[0] == 1
    code, size = raw[15], struct.unpack("<Q", raw[16:24])[0]
    tokens = np.frombuffer(raw[24:], dtype={8: "<u2", 4: "<i4"}[code])
    assert tokens.size == size
    return code, tokens


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


def run_in_process(args, capsys) -> tuple[int, str]:
    """(exit code, stderr) of `meap-prepare args` run in this process."""
    from lit_gpt.prepare.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in args])
    return exit_.value.code, capsys.readouterr().err


def quiet(*_):
    pass


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


def snapshot(dst: Path):
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns, p.read_bytes()) for p in dst.iterdir()}


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


def test_refuses_to_mix_settings_in_one_destination(tmp_path, tokenizer_dir):
    src, dst = tmp_path / "src", tmp_path / "dst"
    write_lines(src / "c4-train.00000-of-00001.json.gz", c4_lines(DOCS))
    prepare(src, dst, tokenizer_dir, chunk_size=32, num_workers=1, log=quiet)
    before = snapshot(dst)
    with pytest.raises(PrepareError, match="chunk_size=32"):
        prepare(src, dst, tokenizer_dir, chunk_size=64, num_workers=1, log=quiet)
    other_tok = tmp_path / "other_tok"
    train_bpe_tokenizer(["completely different text"] * 50, other_tok, vocab_size=300)
    with pytest.raises(PrepareError, match="tokenizer"):
        prepare(src, dst, other_tok, chunk_size=32, num_workers=1, log=quiet)
    assert snapshot(dst) == before


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


def test_gunzip(tmp_path):
    write_lines(tmp_path / "in" / "c4-train.00000-of-00001.json.gz", ["a", "b"])
    out = gunzip_files(tmp_path / "in", tmp_path / "out")
    assert out == [tmp_path / "out" / "c4-train.00000-of-00001.json"]
    assert out[0].read_text() == "a\nb\n"
    assert gunzip_files(tmp_path / "in", tmp_path / "out") == []  # existing outputs are left alone


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


# ----------------------------------------------------------------------------- the word-cache fast path


def fuzz_texts(count: int, seed: int = 0) -> list[str]:
    """Random texts built from the pieces where tokenizers differ: spaces, marks, digits, scripts, specials."""
    import random

    pieces = [" ", "  ", "   ", "\n", "\t", "\r\n", "▁", "▁▁", "a", "e", "t", "th", "the", "The", "ing", "er", ".", ",",
              "'", "-", "0", "7", "42", "é", "ü", "ß", "日", "本", "🦙", "👩‍👩‍👧", "\u0301", "\u200b", "\x00", "</s>",
              "<s>", "[MASK]", "<unk>", "<0x0A>", "http://", "world", "hello", "Hello", "xyzzy", "\u3000"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 30))) for _ in range(count)]


def reference_stream(tokenizer, texts, eos):
    """What the encoder must return: the plain tokenizer call on each text, then EOS, concatenated."""
    ids = []
    for text in texts:
        ids += tokenizer(text, split_special_tokens=True)["input_ids"] + [eos]
    return ids


@pytest.fixture(scope="module")
def llama_tokenizer(llama_tokenizer_dir):
    from lit_gpt.tokenizer import load_tokenizer

    return load_tokenizer(llama_tokenizer_dir)


def test_word_cache_gives_the_tokenizer_ids_on_tricky_texts(llama_tokenizer):
    """The LLaMA-style tokenizer takes the word-cache path, and it gives exactly the tokenizer's ids."""
    from lit_gpt.prepare.token_encoding import BatchEncoder

    encoder = BatchEncoder(llama_tokenizer, np.uint16)
    assert encoder.method == "word cache", encoder.why_not_word_cache
    eos = llama_tokenizer.eos_token_id
    fuzz = fuzz_texts(400)
    for batch in (TRICKY, fuzz[:200], TRICKY[::-1] + fuzz[200:], [TRICKY[5]], [""], []):
        # Later batches hit words cached by earlier ones.
        assert encoder(batch).tolist() == reference_stream(llama_tokenizer, batch, eos)
    # Emptying the cache (its memory bound) changes nothing.
    encoder.word_cache.MAX_CACHE_BYTES = 1000
    for _ in range(2):
        assert encoder(fuzz[:50]).tolist() == reference_stream(llama_tokenizer, fuzz[:50], eos)
    assert len(encoder.word_cache._cache) == 2  # reset to the two document-boundary entries
    wide = BatchEncoder(llama_tokenizer, np.int32)  # the chunk dtype of vocabularies beyond uint16
    assert wide(TRICKY).dtype == np.int32 and wide(TRICKY).tolist() == reference_stream(llama_tokenizer, TRICKY, eos)


def test_word_cache_structure_checks_on_the_real_vocabulary(llama_tokenizer):
    """The facts the exactness rests on, read independently off the vocabulary: "▁" only starts
    merged tokens or forms runs, and digits, newline and tab are never merged."""
    from lit_gpt.prepare.token_encoding import SPACE_MARK, WordCacheBPE

    spec = json.loads(llama_tokenizer.backend_tokenizer.to_str())
    merged = [a + b for a, b in spec["model"]["merges"]]
    assert all(SPACE_MARK not in token.lstrip(SPACE_MARK) for token in merged)
    assert any(token.startswith(SPACE_MARK * 2) for token in merged)  # runs like "▁▁▁▁" exist: no cut inside them
    assert not any(ch in token for token in merged for ch in "0123456789\n\t")
    from lit_gpt.prepare.token_encoding import _around_body

    backend = llama_tokenizer.backend_tokenizer
    words = WordCacheBPE.build(backend, np.uint16, 2, _around_body(backend)).word_pattern.findall(
        "\u2581Hello\u2581\u2581world.\n2024\u2581\u2581")
    assert words == ["\u2581Hello", "\u2581\u2581world.", "\n", "2", "0", "2", "4", "\u2581\u2581"]


SENTENCEPIECE_PIPELINES = ["metaspace", "metaspace first", "classic llama tokenizer.json",
                           "transformers 5 from tokenizer.model"]


def sentencepiece_pipeline(name: str):
    """(normalizer, pre-tokenizer) of each form that sentencepiece conversions produce."""
    from tokenizers import Regex, normalizers, pre_tokenizers

    mark = "\u2581"
    metaspace = pre_tokenizers.Metaspace(prepend_scheme="first" if name == "metaspace first" else "always", split=False)
    if name.startswith("metaspace"):
        return None, metaspace
    if name == "classic llama tokenizer.json":
        return normalizers.Sequence([normalizers.Prepend(mark), normalizers.Replace(" ", mark)]), None
    double_leading_mark = normalizers.Replace(Regex("\\A" + mark), mark * 2)
    return normalizers.Sequence([normalizers.Replace(" ", mark), double_leading_mark]), metaspace


def sentencepiece_style_tokenizer(out_dir: Path, split_while_training: bool, pipeline: str = "metaspace"):
    """A tiny LLaMA-like BPE without byte fallback (unknown characters become <unk> and fuse), with BOS.

    Trained with words split at "▁" (as sentencepiece does) its merges never cross a "▁"; trained on
    whole texts they do, and the word cache must then refuse.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    from lit_gpt.tokenizer import load_tokenizer

    trainer_tok = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer_tok.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="always", split=split_while_training)
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<unk>", "<s>", "</s>"], show_progress=False)
    trainer_tok.train_from_iterator(DOCS * 5 + ["the cat sat on the mat, then the dog"] * 5, trainer=trainer)
    trained = json.loads(trainer_tok.to_str())["model"]
    tokenizer = Tokenizer(models.BPE(trained["vocab"], [tuple(m) for m in trained["merges"]], unk_token="<unk>",
                                     fuse_unk=True, byte_fallback=False))
    normalizer, pre_tokenizer = sentencepiece_pipeline(pipeline)
    if normalizer is not None:
        tokenizer.normalizer = normalizer
    if pre_tokenizer is not None:
        tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                            unk_token="<unk>").save_pretrained(str(out_dir))
    return load_tokenizer(out_dir)


@pytest.mark.parametrize("pipeline", SENTENCEPIECE_PIPELINES)
def test_word_cache_on_each_sentencepiece_pipeline_without_byte_fallback(tmp_path, pipeline):
    """Unknown characters become <unk> and fuse with unknown neighbours: the word cache keeps them together."""
    from lit_gpt.prepare.token_encoding import BatchEncoder

    tokenizer = sentencepiece_style_tokenizer(tmp_path / "tok", split_while_training=True, pipeline=pipeline)
    encoder = BatchEncoder(tokenizer, np.uint16)
    assert encoder.method == "word cache", encoder.why_not_word_cache
    texts = TRICKY + fuzz_texts(300, seed=1) + ["日本 語\n本🦙x", "zq 日\t本 🦙🦙"]
    want = reference_stream(tokenizer, texts, tokenizer.eos_token_id)
    assert want[0] == tokenizer.bos_token_id and tokenizer.unk_token_id in want
    assert encoder(texts).tolist() == want


def test_word_cache_refuses_merges_across_the_space_mark(tmp_path):
    from lit_gpt.prepare.token_encoding import BatchEncoder

    tokenizer = sentencepiece_style_tokenizer(tmp_path / "tok", split_while_training=False)
    encoder = BatchEncoder(tokenizer, np.uint16)
    assert encoder.method == "rust batch" and "joins across" in encoder.why_not_word_cache
    texts = TRICKY + fuzz_texts(100, seed=2)
    assert encoder(texts).tolist() == reference_stream(tokenizer, texts, tokenizer.eos_token_id)
