"""Batched greedy decoding with a Hugging Face causal LM, and teacher-forced answer log-probabilities."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Sequence

import torch

from lit_gpt.errors import UserError

if TYPE_CHECKING:
    from lit_gpt.eval.prompts import RetrievalPrompt


def _padded_batches(rows: Sequence[Sequence[int]], batch_size: int, pad_id: int, desc: str):
    """(row indices, input_ids, attention_mask) of `rows` in batches of similar lengths (sorted by length),
    left-padded so every row ends in the last column, behind a progress bar on a terminal."""
    from tqdm.auto import tqdm

    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    for batch in tqdm(batches, desc=desc, unit="batch", disable=not sys.stderr.isatty()):
        width = max(len(rows[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for r, i in enumerate(batch):
            input_ids[r, width - len(rows[i]) :] = torch.as_tensor(list(rows[i]), dtype=torch.long)
            attention_mask[r, width - len(rows[i]) :] = 1
        yield batch, input_ids, attention_mask


@torch.inference_mode()
def greedy_generate(model, tokenizer, prompts: Sequence[Sequence[int]], max_new_tokens: int, batch_size: int = 8,
                    desc: str = "decoding") -> list[str]:
    """Greedy continuations of `prompts` (lists of token ids), decoded to text, in input order."""
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id  # set by models.prepare_tokenizer_for_batching
    outputs: list[str] = [""] * len(prompts)
    for batch, input_ids, attention_mask in _padded_batches(prompts, batch_size, pad_id, desc):
        width = input_ids.size(1)
        generated = model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention_mask.to(device),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=pad_id,
            eos_token_id=tokenizer.eos_token_id,
        )
        for row, i in enumerate(batch):
            outputs[i] = tokenizer.decode(generated[row, width:], skip_special_tokens=True)
    return outputs


def prompt_answer_ids(tokenizer, prompts: Sequence[RetrievalPrompt]) -> list[list[int]]:
    """The ids of each prompt's answer as the model would continue the prompt with it (after one space).

    The prompt plus the answer is tokenized as one text, so the answer's first token is the one a
    tokenizer produces mid-text; UserError when that changes the prompt's ids.
    """
    ids = []
    for p in prompts:
        joined = tokenizer(p.text + " " + p.answer)["input_ids"]
        n = len(p.input_ids)
        if joined[:n] != list(p.input_ids) or len(joined) == n:
            where = f"{p.task} prompt (length {p.context_length}, depth {p.depth:g}, sample {p.sample_index})"
            raise UserError(f"{where}: the tokenization of the answer {p.answer!r} merges with the end of the prompt")
        ids.append(joined[n:])
    return ids


@torch.inference_mode()
def answer_logprobs(model, prompts: Sequence[Sequence[int]], answers: Sequence[Sequence[int]], pad_id: int,
                    batch_size: int = 8, desc: str = "scoring") -> list[float]:
    """Mean log-probability of each (non-empty) answer's tokens given its prompt, teacher-forced, one
    forward pass per batch. Position ids count from each row's first real token, so a left-padded row
    sees exactly what it would see alone.
    """
    device = next(model.parameters()).device
    rows = [list(p) + list(a) for p, a in zip(prompts, answers)]
    out: list[float] = [float("nan")] * len(rows)
    for batch, input_ids, attention_mask in _padded_batches(rows, batch_size, pad_id, desc):
        position_ids = (attention_mask.cumsum(-1) - 1).clamp(min=0)
        # Answers end every row (left padding), so only the last `keep` positions' logits are needed:
        # at 4096 tokens x 32k vocabulary the full logits of a batch would take gigabytes.
        keep = max(len(answers[i]) for i in batch) + 1
        logits = model(
            input_ids=input_ids.to(device), attention_mask=attention_mask.to(device), position_ids=position_ids.to(device),
            logits_to_keep=keep,
        ).logits[:, -keep:]
        logprobs = torch.log_softmax(logits.float(), dim=-1)  # (B, keep, V)
        for r, i in enumerate(batch):
            n = len(answers[i])
            targets = input_ids[r, -n:].to(device)
            # logits at t predict token t + 1: the answer's tokens are predicted by the n positions before them.
            predicted = logprobs[r, keep - n - 1 : keep - 1]
            out[i] = float(predicted.gather(-1, targets.unsqueeze(-1)).mean())
    return out
