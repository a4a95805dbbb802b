"""Autoregressive decoding with the KV cache: greedy, temperature and top-k sampling."""

from __future__ import annotations

from typing import Optional

import torch

from lit_gpt.model import GPT


def sample_next(logits: torch.Tensor, temperature: float = 0.0, top_k: Optional[int] = None, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """logits: (B, V) -> next token ids (B,). temperature 0 is greedy (argmax)."""
    if temperature <= 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)


@torch.inference_mode()
def generate(
    model: GPT,
    prompt: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: Optional[int] = None,
    eos_id: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """Continues `prompt` ((T,) or (B, T), equal lengths) by up to `max_new_tokens` tokens.

    Returns the prompt followed by the new tokens, with the batch dimension as given. Once a row has
    produced `eos_id` it keeps emitting `eos_id`; decoding stops when every row has.
    """
    squeeze = prompt.dim() == 1
    idx = prompt.unsqueeze(0) if squeeze else prompt
    B, T = idx.shape
    total = T + max_new_tokens
    if total > model.config.block_size:
        raise ValueError(f"prompt ({T}) + max_new_tokens ({max_new_tokens}) exceeds block_size {model.config.block_size}")
    model.set_kv_cache(B, total, device=idx.device)
    try:
        out = [idx]
        finished = torch.zeros(B, dtype=torch.bool, device=idx.device)
        logits = model(idx, input_pos=torch.arange(T, device=idx.device))[:, -1]
        for pos in range(T, total):
            token = sample_next(logits, temperature, top_k, generator)
            if eos_id is not None:
                token = torch.where(finished, torch.full_like(token, eos_id), token)
                finished |= token == eos_id
            out.append(token.unsqueeze(1))
            if (eos_id is not None and bool(finished.all())) or pos == total - 1:
                break
            logits = model(token.unsqueeze(1), input_pos=torch.tensor([pos], device=idx.device))[:, -1]
    finally:
        model.clear_kv_cache()
    result = torch.cat(out, dim=1)
    return result[0] if squeeze else result
