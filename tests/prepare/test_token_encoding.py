"""The encoders of lit_gpt/prepare/token_encoding.py: the word-cache fast path, tokenizer.json folders,
long documents, `--encoding upstream`, and the paths the pipeline tests do not reach."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from lit_gpt.prepare.token_encoding import make_encoder
from lit_gpt.tokenizer import MASK_TOKEN, load_tokenizer
from tests.prepare.helpers import DOCS, REPO, TRICKY, WHITESPACE_RUNS, fuzz_texts, natural_document


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


# ----------------------------------------------------------------------------- the word-cache fast path


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


# ----------------------------------------------------------------------------- tokenizer.json folders


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


# --------------------------------------------------------------------------- --encoding upstream


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
