"""Exact, fast encoding of document batches for data preparation.

`BatchEncoder` turns a list of documents into one flat token array (each document followed by
EOS) with the ids of `tokenizer(text, split_special_tokens=True)`, by the fastest path that is
provably exact for the tokenizer at hand and checked on probe texts at start:
a word cache for sentencepiece-style BPE (`WordCacheBPE`), the Rust tokenizer's batch call, or the
tokenizer call itself.
"""

from __future__ import annotations

import array
import json
import re
from typing import Callable, Optional

import numpy as np

from lit_gpt.tokenizer import tokenizer_info


class BatchEncoder:
    """Encodes lists of documents to one flat token array, each document followed by EOS.

    Text is never parsed for special tokens: a web page that contains "[MASK]" or "</s>" keeps it
    as text (as upstream's sentencepiece encoding did), so only the trainer puts masks in inputs.
    The ids are always those of `tokenizer(text, split_special_tokens=True)`; the fastest way that
    gives them is chosen at start and checked on `PROBE` (`method` names it):
    - "word cache": sentencepiece-style BPE split into words that BPE provably never merges
      across, each word encoded once (`WordCacheBPE`);
    - "rust batch": the Rust tokenizer's `encode_batch_fast` on whole documents;
    - "transformers": the tokenizer call itself.
    """

    PROBE = [
        "Hello world!", "", " ", "   ", "  Leading spaces,\ttabs\nand newlines. ", "trailing spaces   ",
        "naïve café — 1234 ünïcödé", "emoji 🦙🤖 and ZWJ 👩‍👩‍👧, flags 🇩🇪", "日本語のテキスト、中文字符 and 한국어",
        "literal [MASK], </s> and <s> stay text", "[MASK]", "</s>", "<unk><0x0A>", "a\r\nb\x00c\x0bd\u2028e",
        "digits 3.14159 2,000,000 0x1F", "▁already ▁marked▁▁ words", " \n \t ", "\n\nparagraph\n\n",
        "x" * 300, "supercalifragilisticexpialidocious" * 5, "a  b   c    d     e", "tabs\t\tand\t\t\tmore",
    ]

    def __init__(self, tokenizer, dtype):
        self.tokenizer = tokenizer
        self.dtype = np.dtype(dtype)
        self.eos = tokenizer_info(tokenizer).eos_id
        reference = [list(ids) for ids in encode_as_text(tokenizer, self.PROBE)]
        # A tokenizer whose encode already ends with EOS must not get a second one.
        probe_ids = next((ids for ids in reference if ids), [])
        self.append_eos = not (probe_ids and probe_ids[-1] == self.eos)
        expected = self._flatten(reference)
        self.method, self.backend, self.word_cache = "transformers", None, None
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        if backend is None:
            self.why_not_word_cache = "not a fast (Rust) tokenizer"
            return
        backend.encode_special_tokens = True
        self.backend = backend
        if not np.array_equal(self._rust_batch(self.PROBE), expected):
            self.backend, self.why_not_word_cache = None, "the Rust tokenizer differs from the tokenizer call"
            return
        self.method = "rust batch"
        try:
            word_cache = WordCacheBPE.build(backend, self.dtype, self.eos if self.append_eos else None)
        except NotExact as err:
            self.why_not_word_cache = str(err)
            return
        if not np.array_equal(word_cache(self.PROBE), expected):
            self.why_not_word_cache = "it differs from the tokenizer call on the probe texts"
            return
        self.method, self.word_cache, self.why_not_word_cache = "word cache", word_cache, None

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.word_cache is not None:
            return self.word_cache(texts)
        if self.backend is not None:
            return self._rust_batch(texts)
        return self._flatten(encode_as_text(self.tokenizer, texts))

    def _rust_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self.backend.encode_batch_fast(texts, add_special_tokens=True)
        return self._flatten(encoding.ids for encoding in encodings)

    def _flatten(self, encoded) -> np.ndarray:
        flat: list[int] = []
        for ids in encoded:
            flat += ids
            if self.append_eos:
                flat.append(self.eos)
        return np.array(flat, dtype=self.dtype)


def encode_as_text(tokenizer, texts: list[str]) -> list[list[int]]:
    """`tokenizer(texts)` with special-token strings in the text treated as plain text."""
    return tokenizer(texts, split_special_tokens=True, return_attention_mask=False)["input_ids"]


# --------------------------------------------------------------------------- the word cache


class NotExact(Exception):
    """The word cache would not provably give the tokenizer's ids; the message says why."""


SPACE_MARK = "\u2581"  # "▁", sentencepiece's visible space
_DOC_START, _DOC_END = ("document start",), ("document end",)  # cache keys no word can equal


def _replace_spaces(text: str) -> str:
    return text.replace(" ", SPACE_MARK)


def _double_leading_mark(text: str) -> str:  # Replace(Regex "\A▁" -> "▁▁")
    return SPACE_MARK + text if text.startswith(SPACE_MARK) else text


def _prepend_mark(text: str) -> str:  # Prepend("▁"); never sees an empty text here
    return SPACE_MARK + text


def _mark_if_missing(text: str) -> str:  # Metaspace's prepend_scheme "always" / "first"
    return text if text.startswith(SPACE_MARK) else SPACE_MARK + text


def _mark_spaces_and_prepend(text: str) -> str:  # what LLaMA's pipelines amount to
    return SPACE_MARK + text.replace(" ", SPACE_MARK)


class _Normalizer:
    """The string a sentencepiece-style pipeline hands to BPE, for a non-empty text (picklable)."""

    def __init__(self, steps: tuple):
        self.steps = steps

    def __call__(self, text: str) -> str:
        for step in self.steps:
            text = step(text)
        return text


def _sentencepiece_normalizer(spec: dict) -> Callable[[str], str]:
    """The normalizer + pre-tokenizer of `spec` as Python string steps (NotExact when not known).

    Only the forms that sentencepiece conversions produce are accepted (transformers 5 from
    tokenizer.model, LlamaTokenizer, the classic Llama tokenizer.json), each reproduced exactly; all
    of them leave the whole text as one pre-token.
    """
    steps = []
    for part in _parts(spec.get("normalizer"), "normalizers"):
        if part == {"type": "Replace", "pattern": {"String": " "}, "content": SPACE_MARK}:
            steps.append(_replace_spaces)
        elif part == {"type": "Replace", "pattern": {"Regex": "\\A" + SPACE_MARK}, "content": SPACE_MARK * 2}:
            steps.append(_double_leading_mark)
        elif part == {"type": "Prepend", "prepend": SPACE_MARK}:
            steps.append(_prepend_mark)
        else:
            raise NotExact(f"normalizer {part.get('type')} is not a known sentencepiece step")
    pre_tokenizers = _parts(spec.get("pre_tokenizer"), "pretokenizers")
    for part in pre_tokenizers:
        if (part.get("type") != "Metaspace" or part.get("replacement") != SPACE_MARK or part.get("split") is not False
                or part.get("prepend_scheme") not in ("always", "first", "never") or len(pre_tokenizers) > 1):
            raise NotExact(f"pre-tokenizer {part.get('type')} is not Metaspace without split")
        steps.append(_replace_spaces)
        if part["prepend_scheme"] != "never":  # "first" == "always": the text is one piece
            steps.append(_mark_if_missing)
    # Shorter equivalents, as this runs once per document: no step adds a space, so replacing spaces
    # again changes nothing; a mark doubled when present and then added when missing is a mark added.
    simple: list = []
    for step in steps:
        if step is _replace_spaces and _replace_spaces in simple:
            continue
        if step is _mark_if_missing and simple and simple[-1] is _double_leading_mark:
            simple[-1] = _prepend_mark
            continue
        simple.append(step)
    if sorted(simple, key=id) == sorted([_replace_spaces, _prepend_mark], key=id):  # they commute
        return _mark_spaces_and_prepend
    return _Normalizer(tuple(simple))


def _parts(component: Optional[dict], key: str) -> list[dict]:
    if component is None:
        return []
    if component.get("type") == "Sequence":
        return [part for sub in component[key] for part in _parts(sub, key)]
    return [component]


class WordCacheBPE:
    """Sentencepiece-style BPE (LLaMA's) through a cache of words: the same ids, several times faster.

    The Rust pipeline runs BPE over each whole document as one piece, so its own word cache never
    hits. Yet BPE only ever merges two adjacent symbols into a vocabulary token, so it never merges
    across a position whose two neighbouring characters no merge result contains: cutting a
    document at such positions and encoding the pieces separately gives exactly the same ids, in
    the same order (the merges inside one piece happen in the same rank/position order). `build`
    reads two kinds of such cuts off the merge list, and uses this path only when they hold:
    - before a run of "▁" that follows another character, when no merge result has "▁" after
      another character (true of LLaMA's: "▁" only starts tokens or forms runs like "▁▁▁▁");
    - around a character that no merge result contains (LLaMA: digits, newline, tab, CJK, emoji),
      when such a character cannot become <unk> and fuse with its neighbour (byte fallback).
    Pieces are mostly words like "▁the" or "▁world."; each distinct one goes through the Rust BPE
    once and its ids are then looked up, as bytes of the chunk dtype, in a dict.
    """

    # The cache is emptied when it holds about this much memory (~200 bytes per word, measured), per
    # worker process; 128 MiB keeps ~650k words, enough for nearly every word of C4 to hit.
    MAX_CACHE_BYTES = 128 << 20

    def __init__(self, normalize: Callable[[str], str], word_pattern: "re.Pattern", model, dtype, prefix: list[int],
                 end: list[int]):
        self.normalize = normalize
        self.word_pattern = word_pattern
        self.model = model  # the Rust BPE model itself: `tokenize` is what the pipeline calls per piece
        self.dtype = np.dtype(dtype)
        self.prefix, self.end = prefix, end  # ids around each document's own: template prefix; suffix + EOS
        # array.array packs a list of ints faster than numpy does, when it has the same C type.
        code = self.dtype.char
        self._array_code = code if code in array.typecodes and array.array(code).itemsize == self.dtype.itemsize else None
        self._reset_cache()

    @classmethod
    def build(cls, backend, dtype, eos: Optional[int]) -> "WordCacheBPE":
        """The word-cache encoder for the Rust tokenizer `backend` (appending `eos` to each document
        unless None); raises NotExact when its exactness does not follow from the tokenizer's structure."""
        spec = json.loads(backend.to_str())  # once per encoder: the stdlib is fast enough
        model = spec.get("model") or {}
        if model.get("type") != "BPE":
            raise NotExact(f"the model is {model.get('type')}, not BPE")
        if model.get("dropout") is not None or model.get("ignore_merges"):
            raise NotExact("BPE dropout or ignore_merges is set")
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise NotExact("BPE marks word continuations")
        if any(not token.get("special") for token in spec.get("added_tokens", [])):
            raise NotExact("non-special added tokens split the text before BPE")
        if spec.get("truncation") or spec.get("padding"):
            raise NotExact("truncation or padding is set")
        normalize = _sentencepiece_normalizer(spec)
        prefix, suffix = _template_ids(spec.get("post_processor"))
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or SPACE_MARK not in vocab:
            raise NotExact(f"no vocabulary dict with {SPACE_MARK!r} in it")
        byte_tokens = {f"<0x{b:02X}>" for b in range(256)}
        not_mergeable = byte_tokens | {model.get("unk_token")}
        merged_chars: set[str] = set()
        for merge in model.get("merges") or []:
            pair = merge.split(" ") if isinstance(merge, str) else merge  # "a b" is the older format
            if len(pair) != 2:
                raise NotExact(f"the merge {merge!r} is not a pair of tokens")
            if pair[0] in not_mergeable or pair[1] in not_mergeable:
                raise NotExact(f"the merge {merge!r} involves a byte-fallback or unknown token")
            token = pair[0] + pair[1]
            if SPACE_MARK in token.lstrip(SPACE_MARK):
                raise NotExact(f"the merge result {token!r} joins across {SPACE_MARK!r}")
            merged_chars.update(token)
        if not merged_chars:
            raise NotExact("no merges")
        glued = re.escape("".join(sorted(merged_chars - {SPACE_MARK})))
        if not glued:
            raise NotExact(f"only {SPACE_MARK!r} is ever merged")
        if model.get("byte_fallback") and byte_tokens <= vocab.keys():
            # Every character outside merge results stands alone, known or not: none becomes <unk>.
            pattern = f"{SPACE_MARK}+[{glued}]*|[{glued}]+|[^{glued}{SPACE_MARK}]"
        else:
            # Only known characters may stand alone; unknown ones could fuse into one <unk>.
            alone = {t for t in vocab if len(t) == 1} - merged_chars - {SPACE_MARK}
            alone_class = re.escape("".join(sorted(alone)))
            pattern = f"{SPACE_MARK}+[^{SPACE_MARK}{alone_class}]*|[^{SPACE_MARK}{alone_class}]+"
            pattern += f"|[{alone_class}]" if alone else ""
        end = suffix + ([eos] if eos is not None else [])
        return cls(normalize, re.compile(pattern), backend.model, dtype, prefix, end)

    def _reset_cache(self) -> None:
        self._cache: dict = {_DOC_START: self._to_bytes(self.prefix), _DOC_END: self._to_bytes(self.end)}
        self._cache_bytes = 0

    def _to_bytes(self, ids: list[int]) -> bytes:
        if self._array_code is not None:
            return array.array(self._array_code, ids).tobytes()
        return np.array(ids, dtype=self.dtype).tobytes()

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Documents in, one flat array out: per document prefix + its ids + end."""
        findall, normalize = self.word_pattern.findall, self.normalize
        words: list = []
        for text in texts:
            if self.prefix:
                words.append(_DOC_START)
            if text:  # an empty text is no piece at all, not a lone "▁"
                words += findall(normalize(text))
            words.append(_DOC_END)
        cache = self._cache
        new = set(words).difference(cache)
        if new:
            tokenize, to_bytes = self.model.tokenize, self._to_bytes
            for word in new:
                cache[word] = to_bytes([token.id for token in tokenize(word)])
            self._cache_bytes += 150 * len(new) + 4 * sum(map(len, new))
        tokens = np.frombuffer(b"".join(map(cache.__getitem__, words)), dtype=self.dtype)
        if self._cache_bytes > self.MAX_CACHE_BYTES:
            self._reset_cache()
        return tokens


def _template_ids(post_processor: Optional[dict]) -> tuple[list[int], list[int]]:
    """The special-token ids a TemplateProcessing puts before and after a single sequence."""
    if post_processor is None:
        return [], []
    if post_processor.get("type") != "TemplateProcessing":
        raise NotExact(f"post-processor {post_processor.get('type')} is not a template")
    before, after, seen = [], [], False
    for item in post_processor.get("single", []):
        if "Sequence" in item:
            if item["Sequence"].get("id") != "A" or seen:
                raise NotExact("the template is not one sequence")
            seen = True
        elif "SpecialToken" in item:
            special = post_processor.get("special_tokens", {}).get(item["SpecialToken"].get("id"), {})
            if "ids" not in special:
                raise NotExact("the template names an unknown special token")
            (after if seen else before).extend(special["ids"])
        else:
            raise NotExact("unknown template item")
    if not seen:
        raise NotExact("the template has no sequence")
    return before, after

