"""The upstream MEAP-SFT example construction (scitix/MEAP `MEAP-SFT.py`), reproduced token for token.

Selected with `--preset upstream` (SPEC §3a). It differs from this project's default in four ways:

- one example per conversation turn, holding only that turn's prompt (no earlier turns); only the
  first turn's prompt carries the system prompt and BOS, later prompts start with the separator;
- prompt and answer are tokenized separately (`encode(prompt)`, `encode(answer)`), not as one text;
- the masked copy is its own example, made only when the answer has more than 50 tokens, with
  `max(1, int(mask_ratio * L))` masked positions, L = min(len, max_length - 1) - answer start;
  its labels are the original tokens at the masked positions only, its EOS is unlabeled;
- an ntp example longer than max_length keeps its first max_length - 1 tokens and then EOS, while
  its labels keep their first max_length entries (the last label is the answer token the EOS replaced).

Masks are drawn with `random.Random.sample`, the call upstream makes; unlike upstream (which draws
them once inside a cached `dataset.map`), the collator draws them again every time a copy is drawn.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional, Sequence

from lit_gpt.loss import IGNORE_INDEX

# upstream makes a masked copy when `len(target_ids) > 50`
UPSTREAM_MIN_ANSWER_TOKENS = 51


@dataclass(frozen=True)
class UpstreamTemplate:
    """Upstream's `Conversation`: the prompt of turn 0 is system + sep + prompt, of turn k>0 sep + prompt."""

    name: str
    system_prompt: str  # the default; a record's or --system_prompt replaces it verbatim
    prompt: str  # "{query}"
    sep: str

    def dialog(self, turns: Sequence[tuple[str, str]], system_prompt: Optional[str] = None) -> list[str]:
        """[prompt_0, answer_0, prompt_1, answer_1, ...] as upstream's `get_dialog` returns them."""
        system = system_prompt or self.system_prompt
        system = system + self.sep if system else ""
        texts = []
        for i, (query, answer) in enumerate(turns):
            texts.append((system if i == 0 else self.sep) + self.prompt.format(query=query))
            texts.append(answer)
        return texts


# Upstream registers this one template. Its system prompt carries the system header, so a custom
# system prompt is written without one, as upstream does; answers end with EOS, not <|eot_id|>.
UPSTREAM_TEMPLATES = {
    "llama3": UpstreamTemplate(
        name="llama3",
        system_prompt="<|start_header_id|>system<|end_header_id|>\n\nYou are a helpful, excellent and smart assistant.",
        prompt="<|start_header_id|>user<|end_header_id|>\n\n{query}<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
        sep="<|eot_id|>",
    ),
}


@dataclass(frozen=True)
class UpstreamSettings:
    """What tokenization needs to lay out upstream's examples (one dataset row per example)."""

    template: UpstreamTemplate
    max_length: int
    min_answer_tokens: int = UPSTREAM_MIN_ANSWER_TOKENS
    masked_copies: bool = True  # False for the ntp baseline and for validation


def messages_to_turns(messages: Sequence[dict]) -> tuple[Optional[str], list[tuple[str, str]]]:
    """(system prompt or None, [(user text, assistant text), ...]) of a normalized conversation.

    An Alpaca input is appended to its instruction after a blank line (upstream reads only
    ShareGPT `conversations`, so Alpaca data reaches it converted into one human turn).
    """
    messages = list(messages)
    system = messages.pop(0)["content"] if messages and messages[0]["role"] == "system" else None
    turns = []
    for user, assistant in zip(messages[0::2], messages[1::2]):
        query = user["content"]
        if user.get("input"):
            query = f"{query}\n\n{user['input']}"
        turns.append((query, assistant["content"]))
    return system, turns


def tokenize_turns(texts: Sequence[str], tokenizer) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, answer ids) per turn; BOS (the tokenizer's special tokens) on the first prompt only."""
    pairs = []
    for i in range(len(texts) // 2):
        source = tokenizer.encode(texts[2 * i], add_special_tokens=(i == 0))
        target = tokenizer.encode(texts[2 * i + 1], add_special_tokens=False)
        pairs.append((list(source), list(target)))
    return pairs


def ntp_example(source_ids: Sequence[int], target_ids: Sequence[int], *, eos_token_id: int, max_length: int) -> dict:
    """Upstream's next-token example of one turn: prompt + answer + EOS, answer and EOS labeled."""
    input_ids = list(source_ids) + list(target_ids) + [eos_token_id]
    if len(input_ids) > max_length:
        input_ids = input_ids[: max_length - 1] + [eos_token_id]
    labels = [IGNORE_INDEX] * len(source_ids) + list(target_ids) + [eos_token_id]
    return {"input_ids": input_ids, "labels": labels[:max_length]}


def can_mask(source_ids: Sequence[int], target_ids: Sequence[int], *, max_length: int, min_answer_tokens: int) -> bool:
    """Whether upstream makes a masked copy of this turn (and would not crash on an empty range)."""
    return len(target_ids) >= min_answer_tokens and len(source_ids) < min(len(source_ids) + len(target_ids), max_length - 1)


def masked_copy(
    source_ids: Sequence[int],
    target_ids: Sequence[int],
    *,
    mask_token_id: int,
    eos_token_id: int,
    max_length: int,
    mask_ratio: float,
    rng: random.Random,
) -> dict:
    """Upstream's masked copy of one turn (call only where `can_mask` holds)."""
    full = list(source_ids) + list(target_ids)
    start, end = len(source_ids), min(len(full), max_length - 1)
    positions = rng.sample(range(start, end), max(1, int((end - start) * mask_ratio)))
    input_ids = full[:end]
    labels = [IGNORE_INDEX] * end
    for p in positions:
        input_ids[p] = mask_token_id
        labels[p] = full[p]
    return {"input_ids": input_ids + [eos_token_id], "labels": labels + [IGNORE_INDEX]}
