"""Fixtures shared by the pretraining tests."""

import json

import pytest

from tests.pretrain_helpers import make_corpus, make_tokenizer


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    from lit_gpt.prepare.pipeline import tokenizer_fingerprint
    from lit_gpt.tokenizer import load_tokenizer

    root = tmp_path_factory.mktemp("pretrain")
    corpus, tokenizer = make_corpus(root / "corpus"), make_tokenizer(root / "tokenizer")
    # The manifest prepare_c4.py writes, with the right tokenizer: the run must accept it.
    fingerprint = tokenizer_fingerprint(load_tokenizer(tokenizer))
    (corpus / "manifest.json").write_text(json.dumps({"tokenizer": {"fingerprint": fingerprint, "vocab_size": 49}}))
    return corpus, tokenizer
