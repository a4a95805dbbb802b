"""SFT data: local Alpaca/ShareGPT JSON(L) files -> cached token ids with answer flags -> MEAP batches.

The masks are not cached: `MEAPCollator` calls the builder each time a sample is drawn, so every
epoch sees new masked positions. The whole rendered conversation is tokenized in one call, each
token belonging to the segment holding its last character, so a prompt ending "ASSISTANT:" is
tokenized as at inference and an answer's leading space goes with the answer's first word.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import torch

from lit_gpt.errors import UserError, first_line
from lit_gpt.sft.builder import IGNORE_INDEX, build_meap_example_from_segments, planned_masked_tokens
from lit_gpt.sft.templates import Template
from lit_gpt.sft.upstream import UpstreamSettings, can_mask, masked_copy, ntp_example, upstream_turns

DATA_SUFFIXES = (".json", ".jsonl")
ROLES = {  # a turn's speaker -> its role
    **dict.fromkeys(("human", "user"), "user"),
    **dict.fromkeys(("gpt", "assistant", "chatgpt", "bard", "model"), "assistant"),
    "system": "system",
}


def find_data_files(file: Optional[str], directory: Optional[str], what: str) -> list[Path]:
    """The JSON/JSONL files given by `--{what}_file` and/or found under `--{what}_file_dir`."""
    files: list[Path] = []
    if file:
        path = Path(file).expanduser()
        if not path.is_file():
            raise UserError(f"--{what}_file: file not found: {path}")
        files.append(path)
    if directory:
        root = Path(directory).expanduser()
        if not root.is_dir():
            raise UserError(f"--{what}_file_dir: directory not found: {root}")
        found = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in DATA_SUFFIXES)
        if not found:
            raise UserError(f"--{what}_file_dir: no .json or .jsonl files under {root}")
        files.extend(found)
    return files


def record_to_messages(record: dict, source: str, index: int) -> Optional[list[dict]]:
    """The conversation in an Alpaca-style or ShareGPT-style record, or None for one without a
    user/assistant exchange (leading assistant and trailing user messages are dropped first)."""
    where = f"{source}: record {index}"
    if not isinstance(record, dict):
        raise UserError(f"{where} is not a JSON object: {_preview(record)}")
    conversation = record.get("conversations")
    if conversation is None:
        conversation = record.get("messages")
    system = record.get("system") or record.get("system_prompt") or None
    if system is not None and not isinstance(system, str):
        raise UserError(f"{where}: the system prompt must be a string, got {_preview(system)}")
    if conversation is not None:  # an empty one is unusable, not an error: ShareGPT dumps hold some
        if not isinstance(conversation, list):
            raise UserError(f"{where}: conversations must be a list of {{from, value}} turns, got {_preview(conversation)}")
        messages = []
        for number, turn in enumerate(conversation, 1):
            if not isinstance(turn, dict):
                raise UserError(f"{where}: conversation turn {number} is not a {{from, value}} object: {_preview(turn)}")
            role = turn.get("from") or turn.get("role")
            # files mixing {from, value} and {role, content} turns load with all four keys, some None
            content = turn.get("value") if turn.get("value") is not None else turn.get("content")
            if not isinstance(role, str) or role not in ROLES:
                raise UserError(f"{where}: conversation turn {number} has unknown speaker {role!r}; known: {', '.join(ROLES)}")
            if not isinstance(content, str):
                raise UserError(f"{where}: conversation turn {number} ({role}): value must be a string, got {_preview(content)}")
            messages.append({"role": ROLES[role], "content": content})
        if messages and messages[0]["role"] == "system":
            system = messages.pop(0)["content"]
        while messages and messages[0]["role"] != "user":
            messages.pop(0)
        while messages and messages[-1]["role"] != "assistant":
            messages.pop()
        alternating = all(m["role"] == ("user" if i % 2 == 0 else "assistant") for i, m in enumerate(messages))
        if not messages or not alternating:
            return None
    elif record.get("instruction") is not None and record.get("output") is not None:
        for name in ("instruction", "input", "output"):
            value = record.get(name)
            if not (isinstance(value, str) or (name == "input" and value is None)):
                raise UserError(f"{where}: {name} must be a string, got {_preview(value)}")
        messages = [
            {"role": "user", "content": record["instruction"], "input": record.get("input") or ""},
            {"role": "assistant", "content": record["output"]},
        ]
    elif record.get("instruction") is not None:
        raise UserError(f"{where} has an instruction but no output")
    else:
        raise UserError(f"{where} has neither instruction/output nor conversations")
    if system:
        messages.insert(0, {"role": "system", "content": system})
    return messages


def _preview(value) -> str:
    """A wrong value as the user wrote it (JSON), short enough for one line."""
    text = json.dumps(value, ensure_ascii=False, default=str).replace("\n", " ")
    return f"{type(value).__name__ if value is not None else 'null'} {text[:60]}{'...' if len(text) > 60 else ''}"


def check_utf8(path: Path) -> None:
    """Refuses a file that is not UTF-8 (e.g. Latin-1), naming its line: `datasets` would load it
    and fail later, mid-tokenization, with a bare UnicodeDecodeError."""
    offset = 0
    with open(path, "rb") as f:
        for number, line in enumerate(f, 1):  # a newline byte is never part of a UTF-8 character
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                raise UserError(f"{path}: line {number} is not UTF-8 text (byte 0x{line[err.start]:02x} at offset "
                                f"{offset + err.start}); save the file as UTF-8, e.g. iconv -f latin1 -t utf-8") from None
            offset += len(line)


def find_bad_record(path: Path) -> None:
    """Raises the UserError of the first malformed record of `path`: `datasets` refuses a file whose
    records disagree on a field's type (a number here, a string there) without saying which."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
        records = data if isinstance(data, list) else [data]
    except json.JSONDecodeError:
        records = []
        lines = [line for line in text.splitlines() if line.strip()]
        for number, line in enumerate(lines, 1):
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise UserError(f"{path}: record {number} is not valid JSON: {err}") from None
    for number, record in enumerate(records, 1):
        record_to_messages(record, str(path), number)


def answer_segments(ids: Sequence[int], flags: Sequence[int]) -> list[tuple[list[int], bool]]:
    """A tokenized sample as the builder's (ids, is_answer) segments."""
    groups = itertools.groupby(zip(ids, flags), key=lambda x: x[1])
    return [([i for i, _ in group], bool(flag)) for flag, group in groups]


def tokenize_conversation(segments, tokenizer, bos_id: Optional[int]) -> tuple[list[int], list[int]]:
    """Token ids of the rendered segments and, per token, 1 where it belongs to an answer."""
    if getattr(tokenizer, "is_fast", False):
        text = "".join(s.text for s in segments)
        ends = list(itertools.accumulate(len(s.text) for s in segments))
        encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ids = list(encoding["input_ids"])
        flags = []
        for start, end in encoding["offset_mapping"]:
            last_char = end - 1 if end > start else start
            segment = min(bisect.bisect_right(ends, last_char), len(segments) - 1)
            flags.append(int(segments[segment].is_answer))
    else:  # tokenizers without offsets: tokenize piece by piece
        ids, flags = [], []
        for s in segments:
            piece = tokenizer(s.text, add_special_tokens=False)["input_ids"]
            ids.extend(piece)
            flags.extend([int(s.is_answer)] * len(piece))
    if bos_id is not None:
        ids, flags = [bos_id] + ids, [0] + flags
    return ids, flags


COLUMNS = ("input_ids", "is_answer", "masked_copy", "turn", "usable", "empty_answer", "n_tokens", "n_answer", "first_label")


def _row(ids, flags, *, turn: int = 0, usable: bool = True, masked_copy: bool = False, empty_answer: bool = False) -> dict:
    return {
        "input_ids": ids,
        "is_answer": flags,
        "masked_copy": masked_copy,
        "turn": turn,  # the records are the rows of turn 0 that are not masked copies
        "usable": usable,
        "empty_answer": empty_answer,  # only whitespace in the answer text (templates may still add some)
        "n_tokens": len(ids),
        "n_answer": sum(flags),
        # the first labeled position: the first answer token, else the EOS the builder appends
        "first_label": flags.index(1) if 1 in flags else len(ids),
    }


def _upstream_rows(system, turns, tokenizer, settings: UpstreamSettings, system_prompt) -> list[dict]:
    """Upstream's examples of one conversation: every turn's ntp example, then every turn's masked copy."""
    encode = settings.slow_llama.encode if settings.slow_llama is not None else tokenizer.encode
    # prompt and answer encoded separately; BOS (the tokenizer's special tokens) on the first prompt only
    pairs = [
        (list(encode(prompt, add_special_tokens=(i == 0))), list(encode(answer, add_special_tokens=False)))
        for i, (prompt, answer) in enumerate(settings.template.dialog(turns, system or system_prompt))
    ]
    copies = [settings.masked_copies and can_mask(src, tgt, max_length=settings.max_length,
                                                  min_answer_tokens=settings.min_answer_tokens) for src, tgt in pairs]
    return [
        _row(src + tgt, [0] * len(src) + [1] * len(tgt), turn=turn, masked_copy=copy, empty_answer=not answer.strip())
        for copy in (False, True)
        for turn, ((src, tgt), (_, answer)) in enumerate(zip(pairs, turns))
        if not copy or copies[turn]
    ]


def _tokenize_batch(batch, indices, *, tokenizer, template, system_prompt, bos_id, source, upstream):
    rows = []
    for index, values in zip(indices, zip(*batch.values())):
        record = dict(zip(batch, values))
        built = []
        if upstream is not None:  # read as upstream reads it
            dialog = upstream_turns(record, source, index + 1)
            built = _upstream_rows(*dialog, tokenizer, upstream, system_prompt) if dialog else []
        elif (messages := record_to_messages(record, source, index + 1)) is not None:
            segments = template.render(messages, tokenizer.eos_token, system_prompt)
            empty = not any(m["content"].strip() for m in messages if m["role"] == "assistant")
            built = [_row(*tokenize_conversation(segments, tokenizer, bos_id), empty_answer=empty)]
        rows += built or [_row([], [], usable=False)]  # a record giving nothing keeps one unusable row
    return {c: [row[c] for row in rows] for c in COLUMNS}


def tokenize_files(
    files: Sequence[Path],
    tokenizer,
    template: Template,
    *,
    system_prompt: Optional[str] = None,
    max_records: Optional[int] = None,
    cache_dir: Optional[str] = None,
    num_proc: Optional[int] = None,
    overwrite_cache: bool = False,
    upstream: Optional[UpstreamSettings] = None,
):
    """A `datasets.Dataset` (cached) of one row per record, or with `upstream` per upstream example."""
    import datasets

    from lit_gpt.tokenizer import tokenizer_info

    info = tokenizer_info(tokenizer)
    parts = []
    remaining = max_records
    for path in files:
        if remaining is not None and remaining <= 0:
            break
        check_utf8(path)
        try:
            raw = datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=cache_dir)
        except Exception as err:  # datasets wraps pyarrow/json errors in several types
            find_bad_record(path)
            raise UserError(f"could not read {path} as JSON or JSON lines: {first_line(err, root=True)}") from err
        if remaining is not None:
            raw = raw.select(range(min(remaining, len(raw))))
            remaining -= len(raw)
        parts.append(
            raw.map(
                _tokenize_batch,
                batched=True,
                with_indices=True,
                remove_columns=raw.column_names,
                num_proc=num_proc,
                load_from_cache_file=not overwrite_cache,
                fn_kwargs=dict(
                    tokenizer=tokenizer,
                    template=template,
                    system_prompt=system_prompt,
                    bos_id=info.bos_id if info.adds_bos else None,
                    source=str(path),
                    upstream=upstream,
                ),
                desc=f"Tokenizing {path.name}",
            )
        )
    return datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]


@dataclass
class DataSummary:
    """What happened to the records of one split before training."""

    records: int = 0
    unusable: int = 0  # conversations without a user/assistant exchange
    dropped: int = 0  # the prompt fills model_max_length, no labeled token is left
    cut: int = 0  # longer than model_max_length: cut from the right
    copy_eligible: int = 0  # answer long enough for a masked copy
    examples: int = 0
    masked_copies: int = 0  # --preset upstream: examples that are masked copies (counted in `examples`)
    empty_answers: int = 0  # kept examples whose answer text is empty (masked copies not counted)
    with_copy: int = 0  # samples that will carry a masked copy under the mode and length in use

    def __str__(self) -> str:
        copies = f" ({self.masked_copies} of them masked copies)" if self.masked_copies else ""
        return (
            f"{self.examples} examples{copies} from {self.records} records "
            f"({self.unusable} without a user/assistant exchange, {self.dropped} dropped because the prompt "
            f"fills model_max_length, {self.cut} cut to model_max_length, {self.copy_eligible} long enough for a masked "
            f"copy, {self.with_copy} will carry one)"
        )


def select_trainable(tokenized, *, max_length: int, min_answer_tokens: int, mode: str = "concat",
                     mask_ratio: float = 0.1, make_room: bool = False, upstream: bool = False):
    """Drops unusable records and those whose prompt leaves no labeled token; returns (dataset, summary).
    `summary.with_copy` counts the samples the collator's builder will give a masked copy, so a MEAP
    run that would in fact train NTP is seen before it starts."""
    columns = ("usable", "first_label", "n_answer", "masked_copy", "turn", "empty_answer")
    usable, first_label, n_answer, copy, turn, empty = (list(tokenized[c]) for c in columns)
    lengths = [n + 1 for n in tokenized["n_tokens"]]  # + the EOS the builder appends
    rows = range(len(usable))
    keep = [i for i in rows if usable[i] and (copy[i] or first_label[i] < max_length)]
    originals = [i for i in keep if not copy[i]]
    summary = DataSummary(
        records=sum(1 for i in rows if turn[i] == 0 and not copy[i]),
        unusable=sum(1 for u in usable if not u),
        dropped=sum(1 for i in rows if usable[i] and not copy[i] and first_label[i] >= max_length),
        cut=sum(1 for i in keep if lengths[i] > max_length),
        copy_eligible=sum(1 for i in originals if n_answer[i] >= min_answer_tokens),
        examples=len(keep),
        masked_copies=len(keep) - len(originals),
        empty_answers=sum(1 for i in originals if empty[i]),
    )
    if upstream:
        summary.with_copy = summary.masked_copies
    elif mode != "ntp":
        flags = list(tokenized["is_answer"])
        summary.with_copy = sum(
            1 for i in originals if planned_masked_tokens(
                [p for p, f in enumerate(flags[i]) if f], lengths[i], mode=mode, mask_ratio=mask_ratio,
                max_length=max_length, min_answer_tokens=min_answer_tokens, make_room=make_room) > 0)
    return tokenized.select(keep).select_columns(["input_ids", "is_answer", "masked_copy"]), summary


def split_records(tokenized, percentage: float) -> tuple[list[int], list[int]]:
    """(training rows, validation rows) of `--preset upstream`'s rows (a record's turns, then their masked
    copies, which validation leaves out), holding out its first records, whole, as many as upstream's
    `datasets` split `train[:p%]` takes (round(n * p / 100), which may be none)."""
    turn, copy = list(tokenized["turn"]), list(tokenized["masked_copy"])
    record_of, records = [], -1
    for t, c in zip(turn, copy):
        records += t == 0 and not c
        record_of.append(records)
    n_records = records + 1
    n_eval = round(n_records * percentage / 100)
    if n_eval >= n_records:
        raise UserError(f"--validation_split_percentage {percentage} leaves no training record out of {n_records}")
    train = [i for i, r in enumerate(record_of) if r >= n_eval]
    validation = [i for i, r in enumerate(record_of) if r < n_eval and not copy[i]]
    return train, validation


# The counts each batch carries to `stats.MEAPTrainer` (the collator may run in a DataLoader worker).
COUNTS_KEY = "meap_counts"
COUNT_NAMES = ("samples", "masked_copies", "masked_tokens", "loss_tokens", "dropped", "sequences")


@dataclass(kw_only=True)
class MEAPCollator:
    """Builds MEAP examples from `select_trainable`'s rows (fresh masks every draw) and pads them.

    In "separate" mode a batch of B samples holds up to 2B sequences, so a step sees the same samples
    as in "concat" mode. With `preset="upstream"` every sample is one upstream example, its masks
    drawn with `random.Random.sample` as upstream draws them. Validation rows carry `ntp_only`, their
    batches no counts.
    """

    mode: str
    mask_ratio: float
    mask_token_id: Optional[int]
    eos_token_id: int
    pad_token_id: int
    max_length: int
    min_answer_tokens: int = 50
    seed: int = 0
    pad_to_multiple_of: Optional[int] = None
    preset: str = "default"
    make_room: bool = False
    rank: int = field(default_factory=lambda: int(os.environ.get("RANK", "0")), init=False)
    # (the key they were seeded for, the torch generator, the Python one of `--preset upstream`'s masks)
    _seeded: Optional[tuple] = field(default=None, init=False, repr=False)

    def _generators(self) -> tuple[torch.Generator, random.Random]:
        # DataLoader workers get a fresh copy of this collator every epoch, so a worker seeds from
        # its per-epoch worker seed; the main process keeps one generator through all epochs.
        worker = torch.utils.data.get_worker_info()
        key = worker.seed if worker is not None else -1
        if self._seeded is None or key != self._seeded[0]:
            seed = hash((self.seed, self.rank, key)) & (2**62 - 1)
            self._seeded = (key, torch.Generator().manual_seed(seed), random.Random(seed))
        return self._seeded[1:]

    def _upstream_example(self, feature: dict, rng: random.Random) -> list[dict]:
        ids, flags = list(feature["input_ids"]), list(feature["is_answer"])
        n_source = len(flags) - sum(flags)  # upstream rows are the prompt, then the answer
        source, target = ids[:n_source], ids[n_source:]
        if feature.get("masked_copy") and not feature.get("ntp_only"):
            return [masked_copy(source, target, mask_token_id=self.mask_token_id, eos_token_id=self.eos_token_id,
                                max_length=self.max_length, mask_ratio=self.mask_ratio, rng=rng)]
        example = ntp_example(source, target, eos_token_id=self.eos_token_id, max_length=self.max_length)
        return [example] if any(label != IGNORE_INDEX for label in example["labels"]) else []

    def __call__(self, features: Sequence[dict]) -> dict:
        examples = []
        counts = dict.fromkeys(COUNT_NAMES, 0)
        generator, rng = self._generators()
        for feature in features:
            if self.preset == "upstream":
                built = self._upstream_example(feature, rng)
            else:
                built = build_meap_example_from_segments(
                    answer_segments(feature["input_ids"], feature["is_answer"]),
                    mode="ntp" if feature.get("ntp_only") else self.mode,
                    mask_ratio=self.mask_ratio,
                    mask_token_id=self.mask_token_id,
                    eos_token_id=self.eos_token_id,
                    max_length=self.max_length,
                    min_answer_tokens=self.min_answer_tokens,
                    generator=generator,
                    make_room=self.make_room,
                )
            # upstream's copies are samples of their own; elsewhere a sample's copy is part of it
            counts["samples"] += not (self.preset == "upstream" and feature.get("masked_copy"))
            counts["dropped"] += not built
            examples.extend(built)
        if not examples:  # select_trainable keeps only buildable rows; a custom dataset may not
            raise ValueError("every sample of this batch was dropped: no labeled token within max_length")
        batch = pad_batch(examples, self.pad_token_id, self.pad_to_multiple_of)
        if features[0].get("ntp_only"):  # validation is plain NTP: nothing masked to report
            return batch
        counts["sequences"] = len(examples)
        # One row per example (padding is unlabeled): masked predictions are [MASK] inputs with a label.
        labeled = batch["labels"] != IGNORE_INDEX
        if self.mask_token_id is None:
            masked = torch.zeros_like(labeled)
        else:
            masked = labeled & (batch["input_ids"] == self.mask_token_id)
        counts["masked_copies"] = int(masked.any(1).sum())
        counts["masked_tokens"] = int(masked.sum())
        counts["loss_tokens"] = int(labeled.sum())
        batch[COUNTS_KEY] = torch.tensor([counts[name] for name in COUNT_NAMES], dtype=torch.long)
        return batch


def pad_batch(examples: Sequence[dict], pad_token_id: int, pad_to_multiple_of: Optional[int] = None) -> dict:
    length = max(len(e["input_ids"]) for e in examples)
    if pad_to_multiple_of:
        length = -(-length // pad_to_multiple_of) * pad_to_multiple_of

    def pad(rows, value: int) -> torch.Tensor:
        return torch.tensor([list(row) + [value] * (length - len(row)) for row in rows], dtype=torch.long)

    return {
        "input_ids": pad([e["input_ids"] for e in examples], pad_token_id),
        "attention_mask": pad([[1] * len(e["input_ids"]) for e in examples], 0),
        "labels": pad([e["labels"] for e in examples], IGNORE_INDEX),
    }
