"""Fixtures shared by several test files of tests/prepare (session-scoped: built once per worker)."""

import json
import shutil

import pytest

from tests.prepare.helpers import DOCS
from tools.sample_corpus import train_bpe_tokenizer


# test_sources.py defines its own `tokenizer_dir` (trained on other texts), which overrides this one there.
@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("tokenizer")
    texts = DOCS * 20 + ["The grass is green. The sky is blue. The pass key is 12345."] * 20
    train_bpe_tokenizer(texts, out, vocab_size=400)
    return out


@pytest.fixture(scope="session")
def sp(llama_tokenizer_dir):
    import sentencepiece

    return sentencepiece.SentencePieceProcessor(model_file=str(llama_tokenizer_dir / "tokenizer.model"))


def _added(content):
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False,
            "special": True}


@pytest.fixture(scope="session")
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


@pytest.fixture(scope="session")
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
