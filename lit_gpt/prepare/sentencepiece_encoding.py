"""Documents to ids with the sentencepiece library itself, for a folder with a `tokenizer.model`:
per document BOS + the library's ids + EOS (what upstream's LLaMA tokenizer gives)."""

from __future__ import annotations

import re
from functools import partial
from typing import Optional

import numpy as np
import sentencepiece
from sentencepiece import sentencepiece_model_pb2

from lit_gpt.prepare.token_encoding import (SPACE_MARK, BatchEncoder, NotExact, WordCacheBPE, cut_long_text,
                                            encode_plans, mark_spaces_and_prepend, plan_document, special_token_pattern)
from lit_gpt.tokenizer import MASK_TOKEN, TokenizerError


class SentencePieceEncoder:
    """BOS + the sentencepiece library's ids + EOS per document. `method` says how: "word cache"
    (`sentencepiece_word_cache`) where that is provably exact for the model and agrees with the plain
    call on `BatchEncoder.PROBE`; else "sentencepiece batch", the library's multi-threaded batch call,
    on a document longer than `PIECE_CHARS` in pieces cut at single spaces between two other
    characters where `split_is_exact` proves that exact, so memory stays bounded."""

    library = "sentencepiece"
    PIECE_CHARS = 1 << 20  # a long document's pieces: ~1M characters each
    BATCH_CHARS = 4_000_000  # characters per call of the library, bounding the ids held at once

    def __init__(self, model_proto: bytes, dtype, parse_special_tokens: bool = False):
        self.dtype, self.parse_special_tokens, self.threads = np.dtype(dtype), parse_special_tokens, 1
        self.processor = sp = sentencepiece.SentencePieceProcessor(model_proto=model_proto)  # pickles itself
        if sp.eos_id() < 0:
            raise TokenizerError("the sentencepiece model has no EOS token, which separates documents")
        self.eos = sp.eos_id()
        self.bos = sp.bos_id() if sp.bos_id() >= 0 else None
        self.adds_bos = self.bos is not None
        self.prefix = [self.bos] if self.adds_bos else []
        self.split_exact, self.why_not_split = split_is_exact(model_proto)
        # What upstream's Hugging Face LLaMA tokenizer parses in text: its control and unknown pieces.
        self.special_ids = specials = {sp.id_to_piece(i): i for i in range(sp.get_piece_size())
                                       if (sp.is_control(i) or sp.is_unknown(i)) and sp.id_to_piece(i) != MASK_TOKEN}
        self.special_pattern = special_token_pattern(specials) if specials and parse_special_tokens else None
        self._cut = re.compile(f"(?<=[^ {SPACE_MARK}]) (?=[^ {SPACE_MARK}])")
        self.method, self.word_cache = "sentencepiece batch", None
        try:
            word_cache = sentencepiece_word_cache(model_proto, self.dtype, self.bos, self.eos,
                                                  specials if parse_special_tokens else None)
        except NotExact as err:
            self.why_not_word_cache = str(err)
        else:
            probe = BatchEncoder.PROBE
            if np.array_equal(word_cache(probe), self._plain(probe)):
                self.method, self.word_cache, self.why_not_word_cache = "word cache", word_cache, None
            else:
                self.why_not_word_cache = "it differs from the plain sentencepiece call on the probe texts"

    def set_threads(self, threads: int) -> None:
        """Threads of each library call (1 in worker processes: the processes are the parallelism)."""
        self.threads = threads
        if self.word_cache is not None:
            self.word_cache.encode_words = partial(self.word_cache.encode_words.func, num_threads=threads)

    @classmethod
    def for_tokenizer(cls, model_file, tokenizer, dtype, parse_special_tokens: bool = False) -> "SentencePieceEncoder":
        """The encoder of `model_file`, after checking that `tokenizer` (loaded from the same folder)
        gives every piece the id the model does: the manifest and the trainer use the tokenizer's ids."""
        try:
            encoder = cls(model_file.read_bytes(), dtype, parse_special_tokens)
        except (OSError, RuntimeError) as err:
            raise TokenizerError(f"cannot read the sentencepiece model {model_file}: {err}") from None
        sp, vocab = encoder.processor, tokenizer.get_vocab()
        for i in range(sp.get_piece_size()):
            if vocab.get(sp.id_to_piece(i)) != i:
                raise TokenizerError(f"{model_file} gives {sp.id_to_piece(i)!r} the id {i}, the tokenizer files beside "
                                     f"it give {vocab.get(sp.id_to_piece(i))}: they are not the same tokenizer")
        return encoder

    def pieces(self, text: str) -> list[str]:
        """`text` cut into pieces whose ids, concatenated, are those of the whole text."""
        # The space itself is dropped: the next piece's dummy prefix "▁" stands for it.
        return cut_long_text(text, self._cut, self.PIECE_CHARS, drop_cut=True) if self.split_exact else [text]

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.word_cache is not None:
            return self.word_cache(texts)
        return self._plain(texts)

    def _plain(self, texts: list[str]) -> np.ndarray:
        plans = ([*self.prefix, *plan_document(text, self.special_pattern, self.special_ids, self.pieces), self.eos]
                 for text in texts)
        encode = partial(self.processor.encode, num_threads=self.threads)
        return encode_plans(plans, encode, self.dtype, self.BATCH_CHARS)


def split_is_exact(model_proto: bytes) -> tuple[bool, Optional[str]]:
    """Whether cutting a text at a single space between two other characters, and encoding the
    part after it on its own (its dummy prefix "▁" standing for the space), gives the same ids.

    True for a BPE model with LLaMA's settings (identity normalization, dummy prefix, no
    whitespace collapsing, no user-defined pieces) in which "▁" never follows another character
    inside a piece: then no merge joins the character before the space with the "▁", so BPE (and
    byte fallback, per symbol) runs on the two sides independently, each side in its own order.
    Returns (False, why) otherwise."""
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(model_proto)
    spec, normalizer = model.trainer_spec, model.normalizer_spec
    if spec.model_type != sentencepiece_model_pb2.TrainerSpec.BPE:
        return False, "not a BPE model"
    if normalizer.name != "identity" or normalizer.precompiled_charsmap:
        return False, f"its normalization is {normalizer.name}, not identity"
    if normalizer.remove_extra_whitespaces or not normalizer.add_dummy_prefix or not normalizer.escape_whitespaces:
        return False, "it collapses whitespace or adds no dummy prefix"
    if spec.treat_whitespace_as_suffix:
        return False, "it treats whitespace as a suffix"
    Piece = sentencepiece_model_pb2.ModelProto.SentencePiece
    for piece in model.pieces:
        if piece.type == Piece.USER_DEFINED:
            return False, f"it has the user-defined piece {piece.piece!r}"
        if piece.type == Piece.NORMAL and SPACE_MARK in piece.piece.lstrip(SPACE_MARK):
            return False, f"its piece {piece.piece!r} joins a character to a following {SPACE_MARK!r}"
    return True, None


def sentencepiece_word_cache(model_proto: bytes, dtype, bos: Optional[int], eos: int,
                             special_ids: Optional[dict] = None) -> WordCacheBPE:
    """The word cache for a sentencepiece BPE model, when its exactness follows from the model.

    Sentencepiece's BPE merges two adjacent symbols only when their concatenation is a piece of
    the vocabulary, so the argument of `WordCacheBPE` holds with "merge result" read as "piece":
    no cut falls before a "▁" that follows another character inside a piece (`split_is_exact`),
    or beside a character that no piece of two or more characters holds; byte fallback keeps an
    unknown character on its own (without it, runs of unknown pieces are fused into one).
    """
    exact, why = split_is_exact(model_proto)
    if not exact:
        raise NotExact(why)
    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(model_proto)
    if not model.trainer_spec.byte_fallback:
        raise NotExact("the model has no byte fallback")
    Piece = sentencepiece_model_pb2.ModelProto.SentencePiece
    mergeable = [p.piece for p in model.pieces if p.type in (Piece.NORMAL, Piece.UNUSED)]
    if SPACE_MARK not in mergeable:
        raise NotExact(f"{SPACE_MARK!r} is not a piece")
    glued = {ch for piece in mergeable if len(piece) > 1 for ch in piece} - {SPACE_MARK}
    if not glued:
        raise NotExact("no piece of two or more characters")
    glued_class = re.escape("".join(sorted(glued)))
    pattern = f"{SPACE_MARK}+[{glued_class}]*|[{glued_class}]+|[^{glued_class}{SPACE_MARK}]"
    model.normalizer_spec.add_dummy_prefix = False
    # The words already carry their "▁": the same model with its dummy prefix off encodes them as slices
    # of the prefixed text. (A bound method of the processor pickles, for the workers.)
    words = partial(sentencepiece.SentencePieceProcessor(model_proto=model.SerializeToString()).encode, num_threads=1)
    prefix = [bos] if bos is not None else []
    return WordCacheBPE(mark_spaces_and_prepend, re.compile(pattern), words, dtype, prefix, [eos], special_ids)
