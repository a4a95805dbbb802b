"""Batched greedy decoding of token-id prompts with a Hugging Face causal LM."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import torch


def _batches(order: list[int], batch_size: int) -> list[list[int]]:
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


@torch.inference_mode()
def greedy_generate(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    batch_size: int = 8,
    desc: str = "decoding",
    progress: Optional[bool] = None,
) -> list[str]:
    """Greedy continuations of `prompts` (lists of token ids), decoded to text, in input order.

    Prompts are sorted by length so a batch holds similar lengths, and left-padded so that every
    row's next token comes from the last column.
    """
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    show = sys.stderr.isatty() if progress is None else progress
    for batch in tqdm(_batches(order, batch_size), desc=desc, unit="batch", disable=not show):
        width = max(len(prompts[i]) for i in batch)
        input_ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for row, i in enumerate(batch):
            ids = torch.as_tensor(list(prompts[i]), dtype=torch.long)
            input_ids[row, width - len(ids) :] = ids
            attention_mask[row, width - len(ids) :] = 1
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
