"""lit_gpt.prepare.sentencepiece_encoding: a sentencepiece model's documents checked against the
sentencepiece library and the Hugging Face tokenizer call, with special tokens and long documents."""

import shutil

import numpy as np
import pytest

from lit_gpt.prepare.sentencepiece_encoding import SentencePieceEncoder
from lit_gpt.prepare.token_encoding import make_encoder
from lit_gpt.tokenizer import load_tokenizer, tokenizer_info
from tests.prepare.helpers import REPO, TRICKY, WHITESPACE_RUNS, fuzz_texts, natural_document, reference


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
