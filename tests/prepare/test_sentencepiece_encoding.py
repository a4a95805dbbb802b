"""lit_gpt.prepare.token_encoding for sentencepiece models and special tokens, checked against the
sentencepiece library and the Hugging Face tokenizer call; prepare's recursive search, long
documents and worker lifetime."""

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from tests.prepare.test_pipeline import DOCS, TRICKY, c4_lines, fuzz_texts, read_chunk, write_lines

from lit_gpt.prepare.pipeline import DEFAULT_CHUNK_SIZE, PrepareError, find_sources
from lit_gpt.prepare.sentencepiece_encoding import SentencePieceEncoder
from lit_gpt.prepare.token_encoding import make_encoder
from lit_gpt.tokenizer import load_tokenizer, tokenizer_info

REPO = Path(__file__).resolve().parents[2]
SPECIALS = {"<unk>": 0, "<s>": 1, "</s>": 2}


@pytest.fixture(scope="module")
def sp(llama_tokenizer_dir):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(llama_tokenizer_dir / "tokenizer.model"))


def reference(sp, texts, parse_special_tokens=False):
    """BOS + the library's ids + EOS per document; with special tokens parsed, the text between
    them encoded on its own, as the Hugging Face LLaMA tokenizer splits at its added tokens."""
    ids = []
    for text in texts:
        ids.append(1)
        parts = re.split("(<unk>|<s>|</s>)", text) if parse_special_tokens else [text]
        for part in parts:
            if parse_special_tokens and part in SPECIALS:
                ids.append(SPECIALS[part])
            elif part:
                ids += sp.encode(part)
        ids.append(2)
    return ids


WHITESPACE_RUNS = ["a  b", "  two", "x   ", "\t\tindent\n\n\nlines", " \n \t \u3000 \u00a0 ", "a \n b\t c",
                   "word" + " " * 17 + "word", "\u2581 \u2581\u2581  x", "line one\r\n  line two\n\t\tend  ",
                   "Ünïcödé  日本語   😀 \t emoji  ", "   leading and trailing   "]


@pytest.fixture(scope="module")
def hf_layout_dir(llama_tokenizer_dir, tmp_path_factory):
    """The same model as a Hugging Face folder: tokenizer.json and tokenizer_config.json beside it."""
    folder = tmp_path_factory.mktemp("hf_layout")
    load_tokenizer(llama_tokenizer_dir, add_mask_token=False).save_pretrained(str(folder))
    shutil.copy(llama_tokenizer_dir / "tokenizer.model", folder / "tokenizer.model")
    assert (folder / "tokenizer.json").is_file() and (folder / "tokenizer_config.json").is_file()
    return folder


@pytest.mark.parametrize("layout", ["tokenizer.model only", "with tokenizer.json and tokenizer_config.json"])
def test_sentencepiece_stream_does_not_depend_on_the_folder_layout(layout, llama_tokenizer_dir, hf_layout_dir, sp):
    folder = llama_tokenizer_dir if layout == "tokenizer.model only" else hf_layout_dir
    tokenizer = load_tokenizer(folder)
    encoder = make_encoder(tokenizer, folder, np.uint16)
    assert encoder.library == "sentencepiece" and encoder.adds_bos
    assert encoder.method == "word cache", encoder.why_not_word_cache
    texts = WHITESPACE_RUNS + TRICKY + fuzz_texts(300, seed=3)
    want = reference(sp, texts)
    assert encoder(texts).tolist() == want
    # The library's batch call (the path where the word cache is not proven) gives them too.
    assert encoder._plain(texts).tolist() == want
    # And the Hugging Face tokenizer loaded from the folder starts with BOS in both layouts.
    assert tokenizer_info(tokenizer).adds_bos and tokenizer("a")["input_ids"][0] == 1


def test_parse_special_tokens_with_sentencepiece(llama_tokenizer_dir, sp):
    tokenizer = load_tokenizer(llama_tokenizer_dir)
    texts = ["a</s>b", "<s>x</s>", " </s> ", "</s></s><s>", "no specials", "[MASK] stays <unk>text",
             "<s", "</s  >", "<<s>>"] + fuzz_texts(200, seed=4) + WHITESPACE_RUNS
    parsed = make_encoder(tokenizer, llama_tokenizer_dir, np.uint16, parse_special_tokens=True)
    plain = make_encoder(tokenizer, llama_tokenizer_dir, np.uint16)
    assert parsed(texts).tolist() == reference(sp, texts, parse_special_tokens=True)
    assert plain(texts).tolist() == reference(sp, texts)
    assert 32000 not in parsed(texts).tolist()  # [MASK] is text either way
    # Without the word cache, the library's batch call does the same.
    assert parsed._plain(texts).tolist() == reference(sp, texts, parse_special_tokens=True)


def test_parse_special_tokens_with_a_tokenizer_json(tmp_path):
    """A byte-level BPE folder (the embedded tokenizer): the Hugging Face call parsing its specials."""
    from transformers import AutoTokenizer

    folder = REPO / "data" / "tokenizer"
    tokenizer = load_tokenizer(folder)
    reference_tok = AutoTokenizer.from_pretrained(str(folder))
    texts = ["a</s>b", "<s>x</s>", " </s> ", "</s></s><s>", "plain text here"] + fuzz_texts(100, seed=5)
    texts = [t for t in texts if "[MASK]" not in t]
    eos = reference_tok.eos_token_id
    for parse in (True, False):
        encoder = make_encoder(tokenizer, folder, np.uint16, parse_special_tokens=parse)
        assert encoder.library == "tokenizers"
        want = [i for t in texts for i in reference_tok(t, split_special_tokens=not parse)["input_ids"] + [eos]]
        assert encoder(texts).tolist() == want
    assert encoder.adds_bos == (reference_tok("a")["input_ids"][0] == reference_tok.bos_token_id)


def natural_document(chars: int, seed: int = 0) -> str:
    """A long document of the repository's own prose with varied whitespace and some Unicode."""
    words = (REPO / "README.md").read_text().split() + ["naïve", "日本語", "🦙", "café", "—", "1,234.5"]
    rng = random.Random(seed)
    out, size = [], 0
    while size < chars:
        word = rng.choice(words) + rng.choice([" "] * 12 + ["  ", "\n", "\n\n", "\t", " \n", "   "])
        out.append(word)
        size += len(word)
    return "".join(out)


def test_long_documents_are_encoded_in_pieces_with_the_same_ids(llama_tokenizer_dir, sp):
    tokenizer = load_tokenizer(llama_tokenizer_dir)
    encoder = make_encoder(tokenizer, llama_tokenizer_dir, np.uint16)
    assert encoder.split_exact, encoder.why_not_split
    document = natural_document(300_000)
    whole = reference(sp, [document])
    encoder.PIECE_CHARS = 20_000
    pieces = encoder.pieces(document)
    assert len(pieces) > 10 and all(len(p) <= 20_000 for p in pieces)
    assert encoder._plain([document, "short"]).tolist() == whole + reference(sp, ["short"])
    encoder.word_cache.LONG_TEXT_CHARS = 10_000
    assert len(list(encoder.word_cache._slices(encoder.word_cache.normalize(document)))) > 10
    assert encoder([document, "short"]).tolist() == whole + reference(sp, ["short"])
    no_spaces = "x" * 50_000  # no single space to cut at: encoded whole
    assert encoder.pieces(no_spaces) == [no_spaces]


def test_long_documents_in_pieces_with_a_byte_level_tokenizer(llama_tokenizer_dir):
    """The embedded byte-level BPE: the Hugging Face call on the whole document is the reference."""
    from transformers import AutoTokenizer

    from lit_gpt.prepare.token_encoding import NotExact, byte_level_cut

    folder = REPO / "data" / "tokenizer"
    encoder = make_encoder(load_tokenizer(folder), folder, np.uint16)
    assert encoder.long_text_cut is not None, encoder.why_not_split
    reference_tok = AutoTokenizer.from_pretrained(str(folder))
    document = natural_document(200_000, seed=1) + " 123 4x  y\n z"
    encoder.LONG_TEXT_CHARS = 10_000
    assert len(encoder.pieces(document)) > 10
    want = [i for t in (document, "short") for i in reference_tok(t, split_special_tokens=True)["input_ids"] + [2]]
    assert encoder([document, "short"]).tolist() == want
    llama_spec = json.loads(load_tokenizer(llama_tokenizer_dir).backend_tokenizer.to_str())
    with pytest.raises(NotExact):  # a sentencepiece-style pipeline: no proof here, encoded whole
        byte_level_cut(llama_spec)


def test_split_is_refused_for_models_it_is_not_proven_for(llama_tokenizer_dir):
    from sentencepiece import sentencepiece_model_pb2

    from lit_gpt.prepare.sentencepiece_encoding import sentencepiece_word_cache, split_is_exact
    from lit_gpt.prepare.token_encoding import NotExact

    proto = (llama_tokenizer_dir / "tokenizer.model").read_bytes()
    assert split_is_exact(proto) == (True, None)
    for change, why in [(lambda m: setattr(m.normalizer_spec, "remove_extra_whitespaces", True), "collapses"),
                        (lambda m: setattr(m.normalizer_spec, "name", "nmt_nfkc"), "normalization"),
                        (lambda m: setattr(m.pieces[1000], "piece", "ab\u2581c"), "joins"),
                        (lambda m: setattr(m.trainer_spec, "model_type", sentencepiece_model_pb2.TrainerSpec.UNIGRAM),
                         "not a BPE")]:
        model = sentencepiece_model_pb2.ModelProto()
        model.ParseFromString(proto)
        change(model)
        exact, reason = split_is_exact(model.SerializeToString())
        assert not exact and why in reason
        with pytest.raises(NotExact):
            sentencepiece_word_cache(model.SerializeToString(), np.uint16, 1, 2)


def test_a_tokenizer_json_that_disagrees_with_the_model_beside_it_is_refused(tmp_path, llama_tokenizer_dir):
    from lit_gpt.tokenizer import TokenizerError

    folder = tmp_path / "mixed"
    shutil.copytree(REPO / "data" / "tokenizer", folder)
    shutil.copy(llama_tokenizer_dir / "tokenizer.model", folder / "tokenizer.model")
    with pytest.raises(TokenizerError, match="not the same tokenizer"):
        SentencePieceEncoder.for_tokenizer(folder / "tokenizer.model", load_tokenizer(folder), np.uint16)


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


def test_a_destination_from_before_the_encoding_was_recorded(tmp_path, llama_tokenizer_dir):
    """Its tokenizer.json chunks were encoded as today: the run goes on. A tokenizer.model's were
    not (the Hugging Face conversion, no BOS): refused."""
    from lit_gpt.prepare.pipeline import prepare

    src, dst = tmp_path / "src", tmp_path / "dst"
    write_lines(src / "c4-train.00000-of-00002.json.gz", c4_lines(DOCS))
    prepare(src, dst, REPO / "data" / "tokenizer", chunk_size=64, num_workers=1, log=lambda line: None)
    manifest = json.loads((dst / "manifest.json").read_text())
    del manifest["encoding"]
    (dst / "manifest.json").write_text(json.dumps(manifest))
    write_lines(src / "c4-train.00001-of-00002.json.gz", c4_lines(DOCS))
    summary = prepare(src, dst, REPO / "data" / "tokenizer", chunk_size=64, num_workers=1, log=lambda line: None)
    assert summary.sources_done == 1 and summary.sources_skipped == 1
    assert json.loads((dst / "manifest.json").read_text())["encoding"]["backend"] == "tokenizers"

    old = {**manifest, "tokenizer": {**manifest["tokenizer"], "adds_bos": False}, "sources": {}}
    from lit_gpt.prepare.pipeline import check_manifest

    settings = {**old, "encoding": {"backend": "sentencepiece", "bos_added": True, "parse_special_tokens": False}}
    with pytest.raises(PrepareError, match="encoding.backend"):
        check_manifest(old, settings, dst)


def test_command_line_defaults_and_help(capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("prepare_c4", REPO / "data_process" / "prepare_c4.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    assert DEFAULT_CHUNK_SIZE == 4097 * 1024  # upstream's: block_size 4096 + 1, 1024 blocks per file
    args = script.parse_args(["--source_path", "s", "--destination_path", "d", "--tokenizer_dir", "t"])
    assert args.chunk_size == DEFAULT_CHUNK_SIZE and args.parse_special_tokens is False
    assert script.parse_args([*"--source_path s --destination_path d --tokenizer_dir t".split(),
                              "--parse_special_tokens"]).parse_special_tokens is True
    with pytest.raises(SystemExit):
        script.parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--parse_special_tokens" in help_text and "searched recursively" in help_text and "4097*1024" in help_text


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


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be collected


DRIVER = """
import os, sys, time
from pathlib import Path
import lit_gpt.prepare.pipeline as prepare_module

def stuck(*args, **kwargs):  # a worker busy on a source for a long time
    Path(sys.argv[4], str(os.getpid())).touch()
    time.sleep(300)
    yield from ()

prepare_module.iter_records = stuck
prepare_module.prepare(sys.argv[1], sys.argv[2], sys.argv[3], num_workers=2, log=lambda line: None)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_end_when_the_main_process_is_killed(tmp_path):
    src = tmp_path / "src"
    for i in range(2):
        write_lines(src / f"c4-train.0000{i}-of-00002.json.gz", c4_lines(DOCS))
    busy = tmp_path / "busy"  # each worker leaves its pid here once it is at work
    busy.mkdir()
    main = subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(tmp_path / "dst"),
                             str(REPO / "data" / "tokenizer"), str(busy)],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers := [int(p.name) for p in busy.iterdir()]) < 2:
            assert main.poll() is None, main.stderr.read().decode()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
        assert set(workers) <= set(_children(main.pid))
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)], "workers outlived the main process"
    finally:
        if main.poll() is None:
            main.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)


# --------------------------------------------------------------------------- --encoding upstream

def _added(content):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


@pytest.fixture(scope="module")
def upstream_dir(llama_tokenizer_dir, tmp_path_factory):
    """The 32k model in a folder shaped like upstream's MEAP-Pretain/tokenizer (a LLaMA-2 Hugging Face
    folder): tokenizer.model and a tokenizer_config.json naming LlamaTokenizer, so legacy=False applies."""
    folder = tmp_path_factory.mktemp("upstream_tokenizer")
    shutil.copy(llama_tokenizer_dir / "tokenizer.model", folder / "tokenizer.model")
    config = {
        "add_bos_token": True, "add_eos_token": False, "add_prefix_space": True,
        "added_tokens_decoder": {"0": _added("<unk>"), "1": _added("<s>"), "2": _added("</s>")},
        "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": None,
        "clean_up_tokenization_spaces": False, "legacy": True, "model_max_length": 1000000000000000019884624838656,
        "sp_model_kwargs": {}, "spaces_between_special_tokens": False, "tokenizer_class": "LlamaTokenizer",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    return folder


@pytest.fixture(scope="module")
def upstream_call(upstream_dir):
    """Upstream's prepare call: AutoTokenizer.from_pretrained(dir, legacy=False), encode(text) + [eos]."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(upstream_dir), legacy=False)

    def encode(texts, parse_special_tokens=True):
        ids = []
        for text in texts:
            if parse_special_tokens:
                ids += tokenizer.encode(text) + [tokenizer.eos_token_id]
            else:  # the same call with special-token strings kept as text
                ids += tokenizer(text, split_special_tokens=True)["input_ids"] + [tokenizer.eos_token_id]
        return ids

    return encode


SPECIAL_TEXTS = ["<s>start", "end</s>", "a </s> b", "  <s>  two  ", "<unk><s></s>", "x<s>y</s>z", "</s>", " </s> ",
                 "[MASK] stays text", "a[MASK]b </s>[MASK]"]
UNICODE_TEXTS = ["Ünïcödé  日本語   😀 \t emoji  ", "\u3000full width space", "e\u0301 combining", "\U0001F999\U0001F916",
                 "\u2581 \u2581\u2581  x", "\x00nul\x0bvt\u2028ls", "한국어 텍스트"]


@pytest.mark.parametrize("parse_special_tokens", [True, False])
def test_upstream_encoding_equals_upstreams_call(upstream_dir, upstream_call, parse_special_tokens):
    texts = TRICKY + WHITESPACE_RUNS + SPECIAL_TEXTS + UNICODE_TEXTS + fuzz_texts(300, seed=21)
    encoder = make_encoder(load_tokenizer(upstream_dir), upstream_dir, np.uint16,
                           parse_special_tokens=parse_special_tokens, encoding="upstream")
    # Parsed special tokens rule out the word cache (no "▁" after them); as text it applies.
    assert encoder.method == ("rust batch" if parse_special_tokens else "word cache")
    assert encoder.library == "transformers legacy=False"
    assert encoder(texts).tolist() == upstream_call(texts, parse_special_tokens)
    for text in texts[:40]:  # one document at a time too: nothing depends on the batch
        assert encoder([text]).tolist() == upstream_call([text], parse_special_tokens)


def test_upstream_ids_where_they_differ_from_the_sentencepiece_default(upstream_dir, llama_tokenizer_dir, sp):
    """The two differences found on C4 (leading whitespace, text after a literal special token),
    written out as pieces: upstream's, and the sentencepiece library's that the default writes."""
    tokenizer = load_tokenizer(upstream_dir)
    upstream = make_encoder(tokenizer, upstream_dir, np.uint16, parse_special_tokens=True, encoding="upstream")
    default = make_encoder(tokenizer, upstream_dir, np.uint16, parse_special_tokens=True)
    pieces = lambda ids: [sp.id_to_piece(int(i)) for i in ids]
    assert pieces(upstream(["   This"])) == ["<s>", "▁▁", "▁This", "</s>"]
    assert pieces(default(["   This"])) == ["<s>", "▁▁▁", "▁This", "</s>"]
    assert pieces(upstream(["<s>start"])) == ["<s>", "<s>", "start", "</s>"]
    assert pieces(default(["<s>start"])) == ["<s>", "<s>", "▁start", "</s>"]
    # Stripped text (single spaces) without special tokens or a literal "▁": the same ids either way.
    texts = [" ".join(t.split()) for t in DOCS + TRICKY + fuzz_texts(100, seed=3)]
    texts = [t for t in texts if not re.search("<s>|</s>|<unk>|\u2581", t)]
    assert len(texts) > 60
    assert upstream(texts).tolist() == default(texts).tolist()


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


def test_upstream_encoding_options(tmp_path, upstream_dir):
    from lit_gpt.prepare.cli import parse_args

    common = "--source_path s --destination_path d --tokenizer_dir t".split()
    assert parse_args([*common, "--encoding", "upstream"]).parse_special_tokens is True
    assert parse_args([*common, "--encoding", "upstream", "--no-parse_special_tokens"]).parse_special_tokens is False
    assert parse_args(common).parse_special_tokens is False and parse_args(common).encoding == "default"
    # A folder that already holds [MASK] would turn a literal "[MASK]" into the mask id: refused.
    folder = tmp_path / "with_mask"
    load_tokenizer(upstream_dir).save_pretrained(folder)
    from lit_gpt.tokenizer import TokenizerError

    with pytest.raises(TokenizerError, match=r"\[MASK\]"):
        make_encoder(load_tokenizer(folder), folder, np.uint16, parse_special_tokens=True, encoding="upstream")
