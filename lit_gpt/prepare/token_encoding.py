"""Exact, fast encoding of document batches into one flat token array, each document followed by EOS.

A sentencepiece `tokenizer.model` is encoded by the sentencepiece library itself, as upstream's LLaMA
tokenizer did (transformers 5's conversion of the model splits runs of spaces otherwise); a tokenizer.json
by the fastest path provably exact for it and checked on probe texts at start. Special-token strings
in text stay text unless `parse_special_tokens` is set; "[MASK]" always does, so only the trainer puts
masks in inputs.
"""

from __future__ import annotations

import array
import json
import re
from functools import partial
from itertools import chain
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from lit_gpt.errors import first_line
from lit_gpt.tokenizer import MASK_TOKEN, TokenizerError, sentencepiece_model_file, tokenizer_info

SPACE_MARK = "\u2581"  # "▁", sentencepiece's visible space
ENCODINGS = ("default", "upstream")


def make_encoder(tokenizer, tokenizer_dir, dtype, parse_special_tokens: bool = False, encoding: str = "default"):
    """`encoding="upstream"`: upstream's `AutoTokenizer.from_pretrained(dir, legacy=False).encode(text) + [eos]`."""
    if encoding not in ENCODINGS:  # the command line's choices; `prepare()` callers get the same refusal
        raise TokenizerError(f"--encoding must be one of {', '.join(ENCODINGS)}, got {encoding!r}")
    if encoding == "upstream":
        return UpstreamEncoder(tokenizer_dir, tokenizer, dtype, parse_special_tokens)
    model_file = sentencepiece_model_file(tokenizer_dir)
    if model_file is not None:
        from lit_gpt.prepare.sentencepiece_encoding import SentencePieceEncoder  # it builds on this module

        return SentencePieceEncoder.for_tokenizer(model_file, tokenizer, dtype, parse_special_tokens)
    return BatchEncoder(tokenizer, dtype, parse_special_tokens=parse_special_tokens)


def special_token_pattern(tokens) -> "re.Pattern":
    """Matches (as its one group) any of `tokens`, the longest first where one starts another."""
    return re.compile("(" + "|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)) + ")")


def plan_document(text: str, pattern: Optional["re.Pattern"], ids: dict, pieces=None) -> list:
    """`text` as special-token ids (int: where `pattern`, if given, matches one of `ids`) and the
    texts between them (str, none empty, each cut by `pieces` if given), in order."""
    # With a group, re.split puts each match at an odd index, between the (maybe empty) texts.
    plan: list = []
    for i, part in enumerate(pattern.split(text) if pattern is not None else [text]):
        if i % 2:
            plan.append(ids[part])
        elif part:
            plan += pieces(part) if pieces is not None else [part]
    return plan


def encode_plans(plans, encode: Callable[[list[str]], list], dtype, batch_chars: int) -> np.ndarray:
    """The ids of `plans` (one per document: ids as int, texts as str) as one array, each text
    replaced by its ids; `encode` (texts -> their ids) gets at most `batch_chars` characters at a
    time (or one longer text), so the ids and encodings held at once stay bounded."""
    arrays, group, chars = [], [], 0
    for plan in plans:
        for part in plan:
            if isinstance(part, str):
                if chars and chars + len(part) > batch_chars:
                    arrays.append(_fill_in(group, encode, dtype))
                    group, chars = [], 0
                chars += len(part)
            group.append(part)
    arrays.append(_fill_in(group, encode, dtype))
    return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]


def _fill_in(parts: list, encode, dtype) -> np.ndarray:
    texts = [part for part in parts if isinstance(part, str)]
    encoded = iter(encode(texts) if texts else [])  # the transformers call refuses an empty list
    return np.fromiter(chain.from_iterable(next(encoded) if isinstance(p, str) else (p,) for p in parts), dtype=dtype)


def cut_long_text(text: str, cut: "re.Pattern", size: int, drop_cut: bool = False) -> list[str]:
    """`text` in pieces of about `size` characters, each ending where `cut` matches (looked for in
    the second half of the piece, else further on); `drop_cut` leaves the matched text out."""
    pieces, start = [], 0
    while len(text) - start > size:
        match = cut.search(text, start + size // 2, start + size) or cut.search(text, start + size)
        if match is None:
            break
        pieces.append(text[start : match.start()])
        start = match.end() if drop_cut else match.start()
    pieces.append(text[start:])
    return pieces


# --------------------------------------------------------------------------- Hugging Face tokenizers


class BatchEncoder:
    """The ids of `tokenizer(text, split_special_tokens=True)` (with `parse_special_tokens`: of
    `tokenizer(text)`, "[MASK]" still text) + EOS. `method` names the path chosen at start and checked
    on `PROBE`: "word cache" (`WordCacheBPE`), "rust batch" (`encode_batch_fast`, on the text between
    special tokens when they are parsed) or "transformers" (the tokenizer call)."""

    PROBE = [
        "Hello world!", "", " ", "   ", "  Leading spaces,\ttabs\nand newlines. ", "trailing spaces   ",
        "naïve café — 1234 ünïcödé", "emoji 🦙🤖 and ZWJ 👩‍👩‍👧, flags 🇩🇪", "日本語のテキスト、中文字符 and 한국어",
        "literal [MASK], </s> and <s> stay text", "[MASK]", "</s>", "<unk><0x0A>", "a\r\nb\x00c\x0bd\u2028e",
        "digits 3.14159 2,000,000 0x1F", "▁already ▁marked▁▁ words", " \n \t ", "\n\nparagraph\n\n",
        "x" * 300, "supercalifragilisticexpialidocious" * 5, "a  b   c    d     e", "tabs\t\tand\t\t\tmore",
        "<s>a</s>  b<s> </s>c<unk>", " </s> ", "</s></s><s>",
    ]
    library = "tokenizers"

    def __init__(self, tokenizer, dtype, parse_special_tokens: bool = False):
        self.tokenizer, self.dtype, self.parse_special_tokens = tokenizer, np.dtype(dtype), parse_special_tokens
        self.eos = tokenizer_info(tokenizer).eos_id
        reference = self._read_probe(encode_as_text(tokenizer, self.PROBE))
        specials = [t for t in tokenizer.all_special_tokens if t != MASK_TOKEN]
        self.special_ids = {t: tokenizer.convert_tokens_to_ids(t) for t in specials}
        self.special_pattern = None  # where the text is split: only when special tokens are parsed
        if parse_special_tokens:
            self.special_pattern = special_token_pattern(self.special_ids) if self.special_ids else None
            # The reference: the tokenizer call parsing special tokens, on probes without "[MASK]".
            probes = [text for text in self.PROBE if MASK_TOKEN not in text]
            reference = [list(ids) for ids in tokenizer(probes, return_attention_mask=False)["input_ids"]]
            self.PROBE = probes
        expected = self._flatten(reference)
        self.method, self.backend, self.word_cache = "transformers", None, None
        self._prefix, self._suffix = ([tokenizer.bos_token_id] if self.adds_bos else []), []
        self.long_text_cut, self.why_not_split = None, "not a fast (Rust) tokenizer"
        backend = getattr(tokenizer, "backend_tokenizer", None) if getattr(tokenizer, "is_fast", False) else None
        if backend is None:
            self.library, self.why_not_word_cache = "transformers", "not a fast (Rust) tokenizer"
            self._check(expected)
            return
        backend.encode_special_tokens = True
        self.backend = backend
        self._prefix, self._suffix = _around_body(backend)
        try:
            self.long_text_cut, self.why_not_split = byte_level_cut(json.loads(backend.to_str())), None
        except NotExact as err:
            self.why_not_split = str(err)
        if parse_special_tokens:
            self.method, self.why_not_word_cache = "rust batch", "--parse_special_tokens"
            self._check(expected)
            return
        if not np.array_equal(self._planned(self.PROBE), expected):
            self.backend, self.why_not_word_cache = None, "the Rust tokenizer differs from the tokenizer call"
            return
        self.method = "rust batch"
        try:
            word_cache = WordCacheBPE.build(backend, self.dtype, self.eos if self.append_eos else None,
                                            (self._prefix, self._suffix))
        except NotExact as err:
            self.why_not_word_cache = str(err)
            return
        if not np.array_equal(word_cache(self.PROBE), expected):
            self.why_not_word_cache = "it differs from the tokenizer call on the probe texts"
            return
        self.method, self.word_cache, self.why_not_word_cache = "word cache", word_cache, None

    def _read_probe(self, reference) -> list[list[int]]:
        """The tokenizer's ids of the probe texts; sets whether it adds BOS and whether EOS must be added."""
        reference = [list(ids) for ids in reference]
        # A tokenizer whose encode already ends with EOS must not get a second one.
        probe_ids = next((ids for ids in reference if ids), [])
        self.append_eos = not (probe_ids and probe_ids[-1] == self.eos)
        self.adds_bos = bool(probe_ids) and probe_ids[0] == self.tokenizer.bos_token_id
        return reference

    def set_threads(self, threads: int) -> None:  # the Rust tokenizer's threads follow TOKENIZERS_PARALLELISM
        pass

    def _check(self, expected: np.ndarray) -> None:
        if not np.array_equal(self(self.PROBE), expected):
            raise TokenizerError("--parse_special_tokens: splitting the text at the special tokens does not give the "
                                 "tokenizer's ids (its special tokens strip whitespace or are normalized)")

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.word_cache is not None:
            return self.word_cache(texts)
        if self.parse_special_tokens or self.backend is not None:
            return self._planned(texts)
        return self._flatten(encode_as_text(self.tokenizer, texts))

    # A document longer than this is encoded in pieces where `long_text_cut` allows: the Rust
    # tokenizer's encoding of a whole 33 MB document holds ~6 GB. It also bounds the characters
    # of one call (`encode_plans`).
    LONG_TEXT_CHARS = 1 << 20

    def _planned(self, texts: list[str]) -> np.ndarray:
        """Per document its text's ids (split at the special tokens when they are parsed, a long text
        in `pieces`, each encoded alone) between the ids the tokenizer puts around a text, then EOS."""
        end = self._suffix + ([self.eos] if self.append_eos else [])
        plans = ([*self._prefix, *plan_document(text, self.special_pattern, self.special_ids, self.pieces), *end]
                 for text in texts)
        return encode_plans(plans, self._encode_texts, self.dtype, self.LONG_TEXT_CHARS)

    def _encode_texts(self, texts: list[str]) -> list[list[int]]:
        if self.backend is not None:
            return [encoding.ids for encoding in self.backend.encode_batch_fast(texts, add_special_tokens=False)]
        # The special tokens were split out by the plan: what is left is text, "[MASK]" included.
        return self.tokenizer(texts, add_special_tokens=False, split_special_tokens=True,
                              return_attention_mask=False)["input_ids"]

    def pieces(self, text: str) -> list[str]:
        """`text` in pieces of about LONG_TEXT_CHARS where `long_text_cut` proves the cut exact."""
        return [text] if self.long_text_cut is None else cut_long_text(text, self.long_text_cut, self.LONG_TEXT_CHARS)

    def _flatten(self, encoded) -> np.ndarray:
        flat: list[int] = []
        for ids in encoded:
            flat += ids
            if self.append_eos:
                flat.append(self.eos)
        return np.array(flat, dtype=self.dtype)


class UpstreamEncoder(BatchEncoder):
    """Upstream's prepare encoding, `encode(text) + [eos]` with the legacy=False tokenizer (docs/UPSTREAM.md).
    With `parse_special_tokens`, the tokenizer call through the Rust batch call where it agrees on the
    probe texts (not the word cache: it would put a "▁" after each special token, which legacy=False
    does not); without, `BatchEncoder`'s."""

    library = "transformers legacy=False"

    def __init__(self, tokenizer_dir, tokenizer, dtype, parse_special_tokens: bool = True):
        upstream = load_legacy_false_tokenizer(tokenizer_dir)
        _check_same_ids(upstream, tokenizer, tokenizer_dir)
        if not parse_special_tokens:
            super().__init__(upstream, dtype, parse_special_tokens=False)
            self.library = type(self).library  # BatchEncoder names the library it falls back to
            return
        if MASK_TOKEN in upstream.get_vocab():
            raise TokenizerError(f"--encoding upstream --parse_special_tokens: {tokenizer_dir} already holds "
                                 f"{MASK_TOKEN} as a token, so a literal {MASK_TOKEN} in text would become the mask id; "
                                 "upstream's folder had none: use a folder without it, or --no-parse_special_tokens")
        self.tokenizer, self.dtype, self.parse_special_tokens = upstream, np.dtype(dtype), True
        self.eos = tokenizer_info(upstream).eos_id
        self.word_cache, self.why_not_word_cache = None, "legacy=False puts no '▁' after a special token in text"
        self.long_text_cut, self.why_not_split = None, "special tokens in text are parsed"
        self.special_ids, self.special_pattern = {}, None  # the tokenizer itself parses them
        expected = self._flatten(self._read_probe(upstream(self.PROBE, return_attention_mask=False)["input_ids"]))
        self.backend = upstream.backend_tokenizer if getattr(upstream, "is_fast", False) else None
        if self.backend is not None:
            self.backend.encode_special_tokens = False
            self._prefix, self._suffix = _around_body(self.backend)
            if not np.array_equal(self._planned(self.PROBE), expected):
                self.backend = None
        self.method = "transformers" if self.backend is None else "rust batch"

    def __call__(self, texts: list[str]) -> np.ndarray:
        if self.parse_special_tokens and self.backend is None:  # the tokenizer call parses them
            return self._flatten(self.tokenizer(texts, return_attention_mask=False)["input_ids"])
        return super().__call__(texts)


def load_legacy_false_tokenizer(tokenizer_dir):
    """The tokenizer of `tokenizer_dir` as upstream's prepare loaded it (local files only)."""
    from transformers import AutoTokenizer

    from lit_gpt.tokenizer import check_json_files

    path = Path(tokenizer_dir).expanduser()
    check_json_files(path)
    try:
        return AutoTokenizer.from_pretrained(str(path), legacy=False, local_files_only=True)
    except Exception as err:  # transformers raises many types
        raise TokenizerError(f"--encoding upstream: could not load the tokenizer in {path} with legacy=False: "
                             f"{first_line(err)}") from err


def _check_same_ids(upstream, tokenizer, tokenizer_dir) -> None:
    """The manifest and the trainer use the ids of the project's tokenizer: legacy=False must agree."""
    ours = tokenizer.get_vocab()
    for token, i in upstream.get_vocab().items():
        if ours.get(token) != i:
            raise TokenizerError(f"--encoding upstream: {tokenizer_dir} gives {token!r} the id {i} with legacy=False "
                                 f"and {ours.get(token)} otherwise: the folder's tokenizer files disagree")


def byte_level_cut(spec: dict) -> "re.Pattern":
    """Where a long text may be cut for a GPT-2-style byte-level tokenizer (NotExact otherwise):
    its pre-tokenizer regex (ByteLevel with use_regex) has a space only at the start of a match or
    in an all-whitespace match, so no pre-token holds a letter or digit followed by a space: before
    such a space a pre-token always ends, the pieces on both sides are pre-tokenized (and BPE-encoded)
    exactly as in the whole text. Digits splitting, byte mapping and BPE work within pre-tokens.
    """
    if spec.get("normalizer") is not None:
        raise NotExact("the tokenizer has a normalizer")
    parts = _parts(spec.get("pre_tokenizer"), "pretokenizers")
    if not parts or parts[-1] != {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": parts[-1].get(
            "trim_offsets"), "use_regex": True} or any(part.get("type") != "Digits" for part in parts[:-1]):
        raise NotExact("the pre-tokenizer is not a GPT-2 style ByteLevel (use_regex, no prefix space), after Digits")
    _check_plain(spec, "pre-tokenization")
    return re.compile("(?<=[A-Za-z0-9]) ")


def _check_plain(spec: dict, stage: str) -> None:
    """No non-special added token splits the text before `stage`; no truncation, no padding."""
    if any(not token.get("special") for token in spec.get("added_tokens", [])):
        raise NotExact(f"non-special added tokens split the text before {stage}")
    if spec.get("truncation") or spec.get("padding"):
        raise NotExact("truncation or padding is set")


def _around_body(backend) -> tuple[list[int], list[int]]:
    """The ids the Rust tokenizer's post-processor puts before and after a text's own ids."""
    body = backend.encode("a", add_special_tokens=False).ids
    full = backend.encode("a", add_special_tokens=True).ids
    for start in range(len(full) - len(body) + 1):
        if full[start : start + len(body)] == body:
            return full[:start], full[start + len(body):]
    raise TokenizerError("--parse_special_tokens: the tokenizer's post-processor changes the text's own ids")


def encode_as_text(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, split_special_tokens=True, return_attention_mask=False)["input_ids"]


# --------------------------------------------------------------------------- the word cache


class NotExact(Exception):
    """The word cache would not provably give the tokenizer's ids; the message says why."""


_DOC_START, _DOC_END = ("document start",), ("document end",)  # cache keys no word can equal
_WORD_START = re.compile(f"(?<=[^{SPACE_MARK}]){SPACE_MARK}")


def _replace_spaces(text: str) -> str:
    return text.replace(" ", SPACE_MARK)


def _double_leading_mark(text: str) -> str:  # Replace(Regex "\A▁" -> "▁▁")
    return SPACE_MARK + text if text.startswith(SPACE_MARK) else text


def _prepend_mark(text: str) -> str:  # Prepend("▁"); never sees an empty text here
    return SPACE_MARK + text


def _mark_if_missing(text: str) -> str:  # Metaspace's prepend_scheme "always" / "first"
    return text if text.startswith(SPACE_MARK) else SPACE_MARK + text


def mark_spaces_and_prepend(text: str) -> str:  # what LLaMA's pipelines amount to
    return SPACE_MARK + text.replace(" ", SPACE_MARK)


def _normalize(steps: tuple, text: str) -> str:
    """The string a sentencepiece-style pipeline hands to BPE, for a non-empty text."""
    for step in steps:
        text = step(text)
    return text


def _sentencepiece_normalizer(spec: dict) -> Callable[[str], str]:
    """The normalizer + pre-tokenizer of `spec` as Python string steps (NotExact when not known):
    only the forms that sentencepiece conversions produce (transformers 5 from tokenizer.model,
    LlamaTokenizer, the classic Llama tokenizer.json), each reproduced exactly; all of them leave the
    whole text as one pre-token."""
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
        return mark_spaces_and_prepend
    return partial(_normalize, tuple(simple))  # a partial pickles, for the workers


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
    Pieces are mostly words like "▁the" or "▁world."; each distinct one goes through the BPE model
    once (`encode_words`: the Rust model, or the sentencepiece library for a tokenizer.model, see
    `lit_gpt.prepare.sentencepiece_encoding.sentencepiece_word_cache`) and its ids are then looked up, as
    bytes of the chunk dtype, in a dict.
    """

    # The cache is emptied when it holds about this much memory (~200 bytes per word, measured), per
    # worker process; 128 MiB keeps ~650k words, enough for nearly every word of C4 to hit.
    MAX_CACHE_BYTES = 128 << 20

    def __init__(self, normalize: Callable[[str], str], word_pattern: "re.Pattern", encode_words, dtype,
                 prefix: list[int], end: list[int], special_ids: Optional[dict] = None):
        self.normalize, self.word_pattern, self.dtype = normalize, word_pattern, np.dtype(dtype)
        self.encode_words = encode_words  # list of words -> list of their ids, by the BPE model itself
        self.prefix, self.end = prefix, end  # ids around each document's own: template prefix; suffix + EOS
        # Special-token strings to turn into their ids; each text between them is normalized on its own.
        self.special_ids = special_ids or {}
        self.special_pattern = special_token_pattern(self.special_ids) if self.special_ids else None
        # array.array packs a list of ints faster than numpy does, when it has the same C type.
        code = self.dtype.char
        self._array_code = code if code in array.typecodes and array.array(code).itemsize == self.dtype.itemsize else None
        self._reset_cache()

    @classmethod
    def build(cls, backend, dtype, eos: Optional[int], around: tuple[list[int], list[int]]) -> "WordCacheBPE":
        """The word-cache encoder for the Rust tokenizer `backend` (appending `eos` to each document
        unless None; `around`: the ids its post-processor puts before and after every text, `_around_body`);
        raises NotExact when its exactness does not follow from the tokenizer's structure."""
        spec = json.loads(backend.to_str())  # once per encoder: the stdlib is fast enough
        model = spec.get("model") or {}
        if model.get("type") != "BPE":
            raise NotExact(f"the model is {model.get('type')}, not BPE")
        if model.get("dropout") is not None or model.get("ignore_merges"):
            raise NotExact("BPE dropout or ignore_merges is set")
        if model.get("continuing_subword_prefix") or model.get("end_of_word_suffix"):
            raise NotExact("BPE marks word continuations")
        _check_plain(spec, "BPE")
        normalize = _sentencepiece_normalizer(spec)
        prefix, suffix = around  # every post-processor adds the same ids to every text
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
        return cls(normalize, re.compile(pattern), partial(_rust_words, backend.model), dtype, prefix, end)

    def _reset_cache(self) -> None:
        self._cache: dict = {_DOC_START: self._to_bytes(self.prefix), _DOC_END: self._to_bytes(self.end)}
        self._cache.update({("special", i): self._to_bytes([i]) for i in self.special_ids.values()})
        self._cache_bytes = 0

    def _to_bytes(self, ids: list[int]) -> bytes:
        if self._array_code is not None:
            return array.array(self._array_code, ids).tobytes()
        return np.array(ids, dtype=self.dtype).tobytes()

    # A document longer than this is cut into words a slice at a time, so memory holds the words of
    # one slice and not all of them (a 33 MB page has millions).
    LONG_TEXT_CHARS = 1 << 20

    def _slices(self, text: str) -> list[str]:
        """`text` (normalized) in slices of about LONG_TEXT_CHARS, cut where a word always starts:
        at a "▁" after another character (every word pattern that holds "▁" starts with its run)."""
        return cut_long_text(text, _WORD_START, self.LONG_TEXT_CHARS)

    def __call__(self, texts: list[str]) -> np.ndarray:
        """Documents in, one flat array out: per document prefix + its ids + end."""
        findall, normalize = self.word_pattern.findall, self.normalize
        parts: list[bytes] = []
        words: list = []
        for text in texts:
            if self.prefix:
                words.append(_DOC_START)
            # An empty text is no segment at all, not a lone "▁".
            for segment in plan_document(text, self.special_pattern, self.special_ids):
                if isinstance(segment, int):
                    words.append(("special", segment))
                elif len(segment) > self.LONG_TEXT_CHARS:
                    for piece in self._slices(normalize(segment)):
                        words += findall(piece)
                        parts.append(self._lookup(words))
                        words = []
                else:
                    words += findall(normalize(segment))
            words.append(_DOC_END)
        parts.append(self._lookup(words))
        return np.frombuffer(b"".join(parts), dtype=self.dtype)

    def _lookup(self, words: list) -> bytes:
        """The ids of `words`, in order, as bytes; new words go through the BPE model once."""
        cache = self._cache
        new = list(set(words).difference(cache))
        if new:
            to_bytes = self._to_bytes
            for word, ids in zip(new, self.encode_words(new)):
                cache[word] = to_bytes(ids)
            self._cache_bytes += 150 * len(new) + 4 * sum(map(len, new))
        ids = b"".join(map(cache.__getitem__, words))
        if self._cache_bytes > self.MAX_CACHE_BYTES:
            self._reset_cache()
        return ids


def _rust_words(model, words: list[str]) -> list[list[int]]:
    """Words to ids with the Rust BPE model: `tokenize` is what its pipeline calls per piece."""
    tokenize = model.tokenize
    return [[token.id for token in tokenize(word)] for word in words]
