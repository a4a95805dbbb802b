"""The encoders of lit_gpt/prepare/token_encoding.py on paths the pipeline tests do not reach."""

import numpy as np
import pytest

from lit_gpt.tokenizer import MASK_TOKEN


@pytest.fixture(scope="module")
def slow_llama_tokenizer(llama_tokenizer_dir):
    """The LLaMA sentencepiece model as a tokenizer without a Rust backend (transformers' Python one)."""
    from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

    tokenizer = SentencePieceBackend(vocab_file=str(llama_tokenizer_dir / "tokenizer.model"), unk_token="<unk>",
                                     bos_token="<s>", eos_token="</s>")
    tokenizer.add_special_tokens({"mask_token": MASK_TOKEN})
    return tokenizer


@pytest.mark.parametrize("parse_special_tokens", [False, True])
def test_literal_mask_stays_text_without_a_rust_backend(slow_llama_tokenizer, parse_special_tokens):
    """Only the trainer puts [MASK] in inputs: a literal "[MASK]" in a document is encoded as the
    text it is, also when the other special tokens are parsed (the pieces between them are text)."""
    from lit_gpt.prepare.token_encoding import BatchEncoder

    tokenizer = slow_llama_tokenizer
    mask_id, eos = tokenizer.convert_tokens_to_ids(MASK_TOKEN), tokenizer.eos_token_id
    encoder = BatchEncoder(tokenizer, np.uint16, parse_special_tokens=parse_special_tokens)
    assert encoder.method == "transformers"
    texts = ["a [MASK] b", "[MASK]", "x [MASK][MASK] y z"]
    ids = encoder(texts).tolist()
    assert mask_id not in ids
    # The reference: the tokenizer's own call, keeping special-token strings as text, + EOS.
    expected = [i for text in texts for i in tokenizer(text, split_special_tokens=True)["input_ids"] + [eos]]
    assert ids == expected
    if parse_special_tokens:  # the other special tokens still become their ids
        assert encoder(["a [MASK] b</s>c"]).tolist()[:-1].count(eos) == 1
