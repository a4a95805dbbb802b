"""Fixtures shared by several test files of tests/io (session-scoped: built once per worker)."""

import pytest

from tests.pretrain_helpers import make_corpus, make_tokenizer


@pytest.fixture(scope="session")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock")
    return make_corpus(root / "corpus"), make_tokenizer(root / "tokenizer")
