"""manifest.json (lit_gpt/prepare/manifest.py): a destination refuses runs with other settings, and
takes up destinations written before the encoding was recorded."""

import json
from pathlib import Path

import pytest

from lit_gpt.prepare.pipeline import PrepareError, prepare
from tests.prepare.helpers import DOCS, c4_lines, quiet, snapshot, write_lines
from tools.sample_corpus import train_bpe_tokenizer

REPO = Path(__file__).resolve().parents[2]


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
