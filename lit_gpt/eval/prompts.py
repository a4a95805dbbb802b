"""Offline prompts for the retrieval evaluations, built in tokens of the model's tokenizer.

A prompt is an instruction, a context with one needle in it, and a question that ends where the
answer begins:

- passkey: repetitive filler with "The pass key is 71432. Remember it. ..." (Landmark Attention);
- niah: prose with "The special magic number for KEY is: VALUE." (Kamradt's needle in a haystack,
  RULER's wording), KEY two random words and VALUE a 7-digit number;
- kv: a JSON object of random UUID keys and values (lost in the middle); the gold pair is the needle.

Two numbers define a prompt: its length L in tokens (the ids the model reads, BOS included when the
tokenizer adds it) and the depth d of the needle, measured inside the context: the needle starts
`d * (context tokens - needle tokens)` tokens after the context start, so d=0 puts it first and
d=1 puts it last, right before the question. Both are hit by measuring the real tokenization of the
assembled text and correcting the amount of filler before and after the needle until they agree,
so they hold for any tokenizer. Needles go at a sentence start when one is near the target and at a
word start otherwise. In kv the pairs are ~70 tokens long, so the first pair before the needle and
the last pair after it may be shortened distractors (UUID prefixes) to land the length and depth.

Samples are reproducible: the RNG of a sample is seeded from (seed, task, length, sample index), so
one sample keeps the same needle and haystack at every depth and only the depth varies.
"""

from __future__ import annotations

import random
import re
import uuid
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Optional, Sequence

from lit_gpt.errors import UserError
from lit_gpt.eval.haystack import PASSKEY_FILLER, Corpus, generated_text, word_list

TASKS = ("passkey", "niah", "kv")
_WORD_START = re.compile(r"(?<!\S)\S")
_SENTENCE_START = re.compile(r"(?:\A|[.!?]\s+|\n\s*)(?=\S)")


@dataclass(frozen=True)
class Template:
    instruction: str  # before the context
    needle: str  # formatted with key and value
    question: str  # after the context, formatted with key; the model's answer follows it


TEMPLATES = {
    "passkey": Template(
        instruction=(
            "There is an important piece of information hidden inside a lot of irrelevant text. "
            "Find it and memorize it. I will quiz you about it afterwards.\n\n"
        ),
        needle="The pass key is {value}. Remember it. {value} is the pass key.",
        question="\n\nWhat is the pass key? The pass key is",
    ),
    "niah": Template(
        instruction=(
            "A special magic number is hidden within the following text. "
            "Make sure to memorize it. I will quiz you about it afterwards.\n\n"
        ),
        needle="The special magic number for {key} is: {value}.",
        question=(
            "\n\nWhat is the special magic number for {key} mentioned in the provided text? "
            "The special magic number for {key} mentioned in the provided text is"
        ),
    ),
    "kv": Template(
        instruction="Extract the value corresponding to the specified key in the JSON object below.\n\nJSON data:\n",
        needle='"{key}": "{value}"',
        question='\n\nKey: "{key}"\nCorresponding value:',
    ),
}


@dataclass
class RetrievalPrompt:
    """One prompt with where its parts lie, in token indices of `input_ids`."""

    task: str
    context_length: int  # requested length in tokens
    depth: float  # requested depth in [0, 1]
    sample_index: int
    text: str
    input_ids: list[int] = field(repr=False)
    answer: str
    key: str
    needle_start: int
    needle_end: int  # exclusive
    context_start: int
    context_end: int  # exclusive

    @property
    def needle_depth(self) -> float:
        """The depth the needle really sits at (same definition as `depth`)."""
        room = self.context_end - self.context_start - (self.needle_end - self.needle_start)
        return (self.needle_start - self.context_start) / room if room > 0 else 0.0


class _ProseFiller:
    """Cuts a long text at token counts: at a sentence start within `window` tokens, else at a word start."""

    def __init__(self, tokenizer, text: str, window: int):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=getattr(tokenizer, "is_fast", False))
        self.text = text
        self.n_tokens = len(enc["input_ids"])
        if "offset_mapping" in enc:
            self._token_starts = [start for start, _ in enc["offset_mapping"]]
        else:  # approximate: spread the characters evenly over the tokens
            self._token_starts = [round(i * len(text) / max(1, self.n_tokens)) for i in range(self.n_tokens)]
        self.window = window
        self._word_starts = [m.start() for m in _WORD_START.finditer(text)]
        self._sentence_starts = [m.end() for m in _SENTENCE_START.finditer(text)]

    def _token_of(self, char: int) -> int:
        return max(0, bisect_right(self._token_starts, char) - 1)

    def cut(self, n_tokens: int) -> int:
        """A character index where a word (preferably a sentence) starts, near token `n_tokens`."""
        if n_tokens <= 0:
            return 0
        if n_tokens >= self.n_tokens:
            return len(self.text)
        target = self._token_starts[n_tokens]

        def nearest(starts: list[int]) -> Optional[int]:
            i = bisect_right(starts, target)
            candidates = starts[max(0, i - 1) : i + 1]
            return min(candidates, key=lambda c: abs(c - target)) if candidates else None

        sentence = nearest(self._sentence_starts)
        if sentence is not None and abs(self._token_of(sentence) - n_tokens) <= self.window:
            return sentence
        word = nearest(self._word_starts)
        return word if word is not None else target

    def split(self, before: int, after: int) -> tuple[str, str]:
        c1 = self.cut(before)
        c2 = self.cut(self._token_of(c1) + after) if after > 0 else c1
        return self.text[:c1], self.text[c1:max(c1, c2)].rstrip()

    @staticmethod
    def join(before: str, needle: str, after: str) -> tuple[str, int]:
        context = before + needle + (" " + after if after else "")
        return context, len(before)


class _KeyValueFiller:
    """JSON key-value pairs around the gold pair; shortened distractors absorb the remainder."""

    def __init__(self, tokenizer, rng: random.Random):
        self.tokenizer = tokenizer
        self.rng = rng
        self._pairs: list[tuple[tuple[str, str], int]] = []  # (key, value), its tokens
        self.item = TEMPLATES["kv"].needle.format  # distractors are written as the gold pair is

    def _cost(self, key: str, value: str) -> int:
        return len(self.tokenizer(self.item(key=key, value=value) + ",\n ", add_special_tokens=False)["input_ids"])

    def _pair(self, i: int) -> tuple[tuple[str, str], int]:
        while len(self._pairs) <= i:
            pair = (random_uuid(self.rng), random_uuid(self.rng))
            self._pairs.append((pair, self._cost(*pair)))
        return self._pairs[i]

    def _take(self, first: int, n_tokens: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]], int]:
        """Whole pairs from index `first` while they fit in `n_tokens`, the shortened pair (if any), next index."""
        pairs, used, i = [], 0, first
        while True:
            pair, cost = self._pair(i)
            if used + cost > n_tokens:
                break
            pairs.append(pair)
            used += cost
            i += 1
        rest = n_tokens - used
        key, value = pair  # the pair that did not fit, cut to the room left
        best = None
        for n_chars in range(1, len(key)):
            cost = self._cost(key[:n_chars], value[:n_chars])
            if cost > rest:
                break
            best = (key[:n_chars], value[:n_chars])
        if best is None and rest > 0 and 2 * rest >= self._cost(key[:1], value[:1]):
            best = (key[:1], value[:1])
        return pairs, [best] if best else [], i + 1

    def split(self, before: int, after: int) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        # The shortened pairs go to the ends of the object, away from the needle.
        head, head_short, next_index = self._take(0, max(0, before))
        tail, tail_short, _ = self._take(next_index, max(0, after))
        return head_short + head, tail + tail_short

    def join(self, before: list, needle: str, after: list) -> tuple[str, int]:
        opening = "{" + "".join(self.item(key=k, value=v) + ",\n " for k, v in before)
        closing = "".join(",\n " + self.item(key=k, value=v) for k, v in after) + "}"
        return opening + needle + closing, len(opening)


def random_uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def sample_rng(seed: int, task: str, context_length: int, sample_index: int) -> random.Random:
    # A string seed is hashed with SHA-512 by `random`, so it is stable across processes.
    return random.Random(f"{seed}/{task}/{context_length}/{sample_index}")


def _needle(task: str, rng: random.Random) -> tuple[str, str]:
    if task == "passkey":
        return "", str(rng.randint(10_000, 99_999))
    if task == "niah":
        return f"{rng.choice(word_list('adjective'))}-{rng.choice(word_list('noun'))}", str(rng.randint(1_000_000, 9_999_999))
    return random_uuid(rng), random_uuid(rng)


def _haystack_text(task: str, rng: random.Random, corpus: Optional[Corpus], n_chars: int) -> str:
    if task == "passkey":
        return PASSKEY_FILLER * (n_chars // len(PASSKEY_FILLER) + 1)
    if corpus is not None:
        return corpus.text(rng, n_chars)
    return generated_text(rng, n_chars)


class SamplePrompts:
    """One sample (needle and haystack) of a task at one length, placed at any depth with `at`."""

    def __init__(self, tokenizer, task: str, context_length: int, sample_index: int = 0, seed: int = 0, corpus: Optional[Corpus] = None):
        if task not in TEMPLATES:
            raise UserError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        template = TEMPLATES[task]
        self.tokenizer, self.task, self.context_length, self.sample_index = tokenizer, task, context_length, sample_index
        rng = sample_rng(seed, task, context_length, sample_index)
        self.key, self.value = _needle(task, rng)
        self.needle = template.needle.format(key=self.key, value=self.value)
        self.instruction, self.question = template.instruction, template.question.format(key=self.key)

        fixed = len(tokenizer(self.instruction + self.needle + self.question)["input_ids"])
        self.budget = context_length - fixed
        if self.budget < 0:
            raise UserError(
                f"context length {context_length} is too short for task {task}: "
                f"the instruction, needle and question alone take {fixed} tokens"
            )
        if task == "kv":
            self.filler = _KeyValueFiller(tokenizer, rng)
            return
        window = max(2, int(0.01 * context_length))
        n_chars = 8 * context_length + 1000
        while True:
            hay = _haystack_text(task, rng, corpus, n_chars)
            if self.value not in hay and (not self.key or self.key not in hay):
                self.filler = _ProseFiller(tokenizer, hay, window)
                if self.filler.n_tokens > context_length + 64:
                    break
            n_chars *= 2

    def _assemble(self, depth: float, before: int, after: int) -> RetrievalPrompt:
        head, tail = self.filler.split(before, after)
        context, needle_char = self.filler.join(head, self.needle, tail)
        text = self.instruction + context + self.question
        fast = getattr(self.tokenizer, "is_fast", False)
        enc = self.tokenizer(text, return_offsets_mapping=fast)
        input_ids = list(enc["input_ids"])
        if fast:  # special tokens have empty (0, 0) spans; the others' ends only grow
            spans = [(end, i) for i, (start, end) in enumerate(enc["offset_mapping"]) if end > start]
            ends = [end for end, _ in spans]

        def token(char: int) -> int:
            """Index of the token holding character `char` (len(input_ids) past the end)."""
            if not fast:  # slow tokenizers have no offsets: count the tokens of the text up to the character
                return len(self.tokenizer(text[:char])["input_ids"])
            k = bisect_right(ends, char)
            return spans[k][1] if k < len(spans) else len(input_ids)

        c0 = len(self.instruction)
        return RetrievalPrompt(
            task=self.task,
            context_length=self.context_length,
            depth=depth,
            sample_index=self.sample_index,
            text=text,
            input_ids=input_ids,
            answer=self.value,
            key=self.key,
            needle_start=token(c0 + needle_char),
            needle_end=token(c0 + needle_char + len(self.needle) - 1) + 1,
            context_start=token(c0),
            context_end=token(c0 + len(context) - 1) + 1,
        )

    def at(self, depth: float) -> RetrievalPrompt:
        """The prompt with the needle at `depth`, within a token or so of the requested length and depth."""
        if not 0.0 <= depth <= 1.0:
            raise UserError(f"depth {depth} is outside [0, 1]")
        # Fixed-point iteration: measure the real tokenization and move the cut points by the errors.
        before, after = depth * self.budget, (1 - depth) * self.budget
        best, best_error = None, None
        for _ in range(12):
            prompt = self._assemble(depth, round(before), round(after))
            length_error = self.context_length - len(prompt.input_ids)
            room = prompt.context_end - prompt.context_start - (prompt.needle_end - prompt.needle_start)
            position_error = prompt.context_start + depth * room - prompt.needle_start
            error = max(abs(length_error), abs(position_error))
            if best_error is None or error < best_error:
                best, best_error = prompt, error
            if length_error == 0 and abs(position_error) < 1:
                break
            shift = position_error + depth * length_error
            before, after = max(0.0, before + shift), max(0.0, after + length_error - shift)
        return best


def build_prompts(
    tokenizer,
    task: str,
    context_lengths: Sequence[int],
    depths: Sequence[float],
    samples: int,
    seed: int = 0,
    corpus: Optional[Corpus] = None,
) -> list[RetrievalPrompt]:
    """The whole grid: for each length, each sample, each depth (a sample's haystack is built once)."""
    prompts = []
    for length in context_lengths:
        for i in range(samples):
            sample = SamplePrompts(tokenizer, task, length, i, seed, corpus)
            prompts.extend(sample.at(depth) for depth in depths)
    return prompts
