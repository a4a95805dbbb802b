"""The upstream MEAP-SFT example construction (scitix/MEAP `MEAP-SFT.py`), reproduced token for token.

Selected with `--preset upstream`. How its examples differ from this project's default and how it
reads records is in SPEC §3a, docs/SFT.md and docs/UPSTREAM.md. Where upstream crashes (a turn whose
prompt leaves no answer position before max_length - 1 makes `random.sample` fail on an empty
range) that turn gets no masked copy. Masks are drawn with `random.Random.sample`, the call upstream
makes; unlike upstream (which draws them once inside a cached `dataset.map`), the collator draws
them again every time a copy is drawn.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from transformers.tokenization_utils_sentencepiece import SentencePieceBackend

from lit_gpt.errors import UserError
from lit_gpt.loss import IGNORE_INDEX
from lit_gpt.prepare.token_encoding import SPACE_MARK

UPSTREAM_ROLES = ("human", "gpt")

# upstream makes a masked copy when `len(target_ids) > 50`
UPSTREAM_MIN_ANSWER_TOKENS = 51


@dataclass(frozen=True)
class UpstreamTemplate:
    """Upstream's `Conversation`: the prompt of turn 0 is system + sep + prompt, of turn k>0 sep + prompt."""

    system_prompt: str  # the default; a record's or --system_prompt replaces it verbatim
    prompt: str  # "{query}"
    sep: str

    def dialog(self, turns: Sequence[tuple[str, str]], system_prompt: Optional[str] = None) -> list[tuple[str, str]]:
        """(prompt, answer) per turn, as upstream's `get_dialog` writes them."""
        system = system_prompt or self.system_prompt
        system = system + self.sep if system else ""
        return [
            ((system if i == 0 else self.sep) + self.prompt.format(query=query), answer)
            for i, (query, answer) in enumerate(turns)
        ]


# Upstream registers this one template. Its system prompt carries the system header, so a custom
# system prompt is written without one, as upstream does; answers end with EOS, not <|eot_id|>.
UPSTREAM_TEMPLATES = {
    "llama3": UpstreamTemplate(
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
    slow_llama: Optional["SlowLlamaEncoding"] = None  # upstream's slow tokenizer, for a LLaMA sentencepiece folder


def upstream_turns(record: dict, source: str, index: int) -> Optional[tuple[Optional[str], list[tuple[str, str]]]]:
    """(the record's system_prompt or None, [(human text, gpt text), ...]) as upstream's `get_dialog`
    reads the record, or None when upstream gets no example from it."""
    where = f"{source}: record {index}"
    system = record.get("system_prompt") or None
    if system is not None and not isinstance(system, str):
        raise UserError(f"{where}: system_prompt must be a string")
    conversation = record.get("conversations")
    if conversation is None:
        instruction, output, extra = record.get("instruction"), record.get("output"), record.get("input")
        if not isinstance(instruction, str) or not isinstance(output, str) or not isinstance(extra, (str, type(None))):
            from lit_gpt.sft.data import record_to_messages  # its errors name what is wrong with the record

            record_to_messages(record, source, index)
            raise UserError(f"{where}: --preset upstream reads `conversations` ({{from, value}} turns) or "
                            "instruction/output records, as upstream does")
        query = f"{instruction}\n\n{extra}" if extra else instruction
        return system, [(query, output)]
    if not isinstance(conversation, list) or not all(isinstance(turn, dict) for turn in conversation):
        raise UserError(f"{where}: conversations must be a list of {{from, value}} turns")
    if conversation and conversation[0].get("from") != UPSTREAM_ROLES[0]:
        conversation = conversation[1:]
    if len(conversation) < 2:
        return None
    texts = []
    for j, turn in enumerate(conversation):
        if turn.get("from") == UPSTREAM_ROLES[j % 2]:  # any other speaker, or one out of order, is skipped
            if not isinstance(turn.get("value"), str):
                raise UserError(f"{where}: conversation turn {j + 1} ({turn.get('from')}): value must be a string")
            texts.append(turn["value"])
    if not texts or len(texts) % 2:
        return None
    return system, list(zip(texts[0::2], texts[1::2]))


class SlowLlamaEncoding(SentencePieceBackend):
    """`encode` of upstream's tokenizer for a LLaMA sentencepiece folder: upstream's SFT loads it
    with `use_fast=False`, i.e. transformers 4's sentencepiece `LlamaTokenizer` (`legacy` as the
    folder's tokenizer_config.json says, True when it says nothing), whose ids differ from the fast
    tokenizer's for text that starts with whitespace: "   " is ▁▁▁▁ there, ▁▁▁ in the fast one.
    That class is transformers' sentencepiece backend with the `tokenize` and `encode` below.
    """

    @classmethod
    def for_folder(cls, folder, tokenizer) -> Optional["SlowLlamaEncoding"]:
        """The encoding for `folder` when upstream would load a slow LlamaTokenizer from it, else None.
        `tokenizer` (loaded from the same folder, [MASK] added) gives the added tokens and their ids."""
        folder = Path(folder).expanduser()
        model, config_file = folder / "tokenizer.model", folder / "tokenizer_config.json"
        if not model.is_file() or not config_file.is_file():
            return None
        config = json.loads(config_file.read_text(encoding="utf-8"))  # an object: load_tokenizer has checked it
        if config.get("tokenizer_class") not in ("LlamaTokenizer", "LlamaTokenizerFast"):
            return None
        legacy = config.get("legacy")
        encoding = cls(vocab_file=str(model), legacy=True if legacy is None else bool(legacy),
                       add_prefix_space=bool(config.get("add_prefix_space", True)),
                       added_tokens_decoder=tokenizer.added_tokens_decoder, unk_token=tokenizer.unk_token or "<unk>")
        bos, eos = tokenizer.bos_token_id, tokenizer.eos_token_id
        encoding.prefix = [bos] if config.get("add_bos_token", True) and bos is not None else []
        encoding.suffix = [eos] if config.get("add_eos_token", False) and eos is not None else []
        return encoding

    def tokenize(self, text: str, **kwargs) -> list[str]:  # LlamaTokenizer's: legacy=False adds one "▁" itself
        if self.legacy or not text:
            return super().tokenize(text, **kwargs)
        text = text.replace(SPACE_MARK, " ")
        if self.init_kwargs["add_prefix_space"]:
            text = SPACE_MARK + text
        tokens = super().tokenize(text, **kwargs)
        if len(tokens) > 1 and tokens[0] == SPACE_MARK and tokens[1] in self.added_tokens_encoder:
            tokens = tokens[1:]
        return tokens

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        ids = self.convert_tokens_to_ids(self.tokenize(text))
        return self.prefix + ids + self.suffix if add_special_tokens else ids


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
