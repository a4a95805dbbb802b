"""The LLaMA decoder used for MEAP: RMSNorm, RoPE, grouped-query attention, SwiGLU, untied head.

Parameter names follow TinyLlama's lit_gpt (`transformer.h.{i}.attn.attn`, `mlp.swiglu.w1/w2/w3`,
...) so its checkpoints and the upstream MEAP checkpoints load unchanged, whichever kernels run.
The fused q/k/v weight is laid out per query group: `q_per_kv` query heads, then one key head,
then one value head (lit_gpt's layout; `lit_gpt.convert` splits it for Hugging Face).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn as nn

from lit_gpt import kernels
from lit_gpt.config import Config
from lit_gpt.loss import IGNORE_INDEX, linear_cross_entropy


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float = 1e-5, fused: bool = True) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rms_norm(x, self.weight, self.eps, fused=self.fused)

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


class KVCache(nn.Module):
    """Keys and values of the positions decoded so far, per query group: (B, n_query_groups, T_max, hs)."""

    def __init__(self, batch_size: int, n_query_groups: int, max_seq_length: int, head_size: int, device=None, dtype=None) -> None:
        super().__init__()
        shape = (batch_size, n_query_groups, max_seq_length, head_size)
        self.register_buffer("k", torch.zeros(shape, device=device, dtype=dtype), persistent=False)
        self.register_buffer("v", torch.zeros(shape, device=device, dtype=dtype), persistent=False)

    def update(self, input_pos: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        self.k = self.k.to(k.dtype)
        self.v = self.v.to(v.dtype)
        self.k.index_copy_(2, input_pos, k)
        self.v.index_copy_(2, input_pos, v)
        return self.k, self.v


class CausalSelfAttention(nn.Module):
    def __init__(self, config: Config, fused: bool = True) -> None:
        super().__init__()
        qkv_size = (config.n_head + 2 * config.n_query_groups) * config.head_size
        self.attn = nn.Linear(config.n_embd, qkv_size, bias=False)
        self.proj = nn.Linear(config.n_head * config.head_size, config.n_embd, bias=False)
        self.config = config
        self.fused = fused
        self.kv_cache: Optional[KVCache] = None

    def split_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries (B, nh, T, hs), keys and values (B, ng, T, hs) of x, before RoPE."""
        B, T, _ = x.shape
        c = self.config
        qkv = self.attn(x).view(B, T, c.n_query_groups, c.q_per_kv + 2, c.head_size)
        # One split (not three slices) so backward writes the qkv gradient once.
        q, k, v = qkv.split((c.q_per_kv, 1, 1), dim=3)
        q = q.reshape(B, T, c.n_head, c.head_size).transpose(1, 2)  # (B, nh, T, hs)
        k = k.squeeze(3).transpose(1, 2)  # (B, ng, T, hs)
        v = v.squeeze(3).transpose(1, 2)  # (B, ng, T, hs)
        return q, k, v

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, input_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        B, T, _ = x.shape
        c = self.config
        q, k, v = self.split_qkv(x)
        q, k = kernels.apply_rope(q, k, cos, sin, fused=self.fused)

        if input_pos is None:
            y = kernels.causal_attention(q, k, v, fused=self.fused)
        else:
            if self.kv_cache is None:
                raise RuntimeError("input_pos given but no KV cache: call model.set_kv_cache() first")
            k, v = self.kv_cache.update(input_pos, k, v)
            # A query at position p attends to the cached keys at positions <= p.
            key_pos = torch.arange(k.size(2), device=x.device)
            mask = key_pos.unsqueeze(0) <= input_pos.unsqueeze(1)  # (T, T_max)
            y = kernels.masked_attention(q, k, v, mask)
        y = y.transpose(1, 2).reshape(B, T, c.n_head * c.head_size)
        return self.proj(y)


class LLaMAMLP(nn.Module):
    def __init__(self, config: Config, fused: bool = True) -> None:
        super().__init__()
        # A module named `swiglu` with w1 (gate), w2 (up), w3 (down) keeps TinyLlama's key names.
        self.swiglu = nn.Module()
        self.swiglu.w1 = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.swiglu.w2 = nn.Linear(config.n_embd, config.intermediate_size, bias=False)
        self.swiglu.w3 = nn.Linear(config.intermediate_size, config.n_embd, bias=False)
        self.fused = fused

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.swiglu
        return s.w3(kernels.swiglu(s.w1(x), s.w2(x), fused=self.fused))


class Block(nn.Module):
    def __init__(self, config: Config, fused: bool = True) -> None:
        super().__init__()
        self.norm_1 = RMSNorm(config.n_embd, eps=config.norm_eps, fused=fused)
        self.attn = CausalSelfAttention(config, fused=fused)
        self.norm_2 = RMSNorm(config.n_embd, eps=config.norm_eps, fused=fused)
        self.mlp = LLaMAMLP(config, fused=fused)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, input_pos: Optional[torch.Tensor] = None) -> torch.Tensor:
        x = x + self.attn(self.norm_1(x), cos, sin, input_pos)
        return x + self.mlp(self.norm_2(x))


class GPT(nn.Module):
    """`model(idx)` -> logits (B, T, padded_vocab_size); `model(idx, targets=t)` -> mean loss.

    The loss is computed inside `forward` (so FSDP has the head's weight gathered) by the chunked
    or fused linear cross-entropy, which never holds the full fp32 logits.
    `fused=False` forces the plain PyTorch kernels everywhere (the reference path).
    """

    def __init__(self, config: Config, fused: bool = True) -> None:
        super().__init__()
        self.config = config
        self.fused = fused
        self.lm_head = nn.Linear(config.n_embd, config.padded_vocab_size, bias=False)
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.padded_vocab_size, config.n_embd),
                h=nn.ModuleList(Block(config, fused=fused) for _ in range(config.n_layer)),
                ln_f=RMSNorm(config.n_embd, eps=config.norm_eps, fused=fused),
            )
        )
        self._rope: Optional[tuple[torch.Tensor, torch.Tensor]] = None
        self.loss_chunk_size = 4096
        self.apply(self._init_weights)

    # TinyLlama / GPT-NeoX init: small normal init, output projections shrunk with depth.
    def _init_weights(self, module: nn.Module) -> None:
        std = math.sqrt(2.0 / 5 / self.config.n_embd)
        if isinstance(module, (nn.Embedding, nn.Linear)):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        if isinstance(module, Block):
            depth_std = 1.0 / math.sqrt(self.config.n_embd) / self.config.n_layer
            nn.init.normal_(module.attn.proj.weight, mean=0.0, std=depth_std)
            nn.init.normal_(module.mlp.swiglu.w3.weight, mean=0.0, std=depth_std)

    def reset_parameters(self) -> None:
        """Re-initialises every weight (used after materialising a model built on the meta device)."""
        self.apply(self._init_weights)
        for module in self.modules():
            if isinstance(module, RMSNorm):
                module.reset_parameters()

    def rope_cache(self, seq_len: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        # Built lazily and kept outside the state dict, so a model materialised from the meta
        # device or moved between devices never carries a stale or uninitialised cache.
        if self._rope is None or self._rope[0].device != device or self._rope[0].size(0) < seq_len:
            length = max(seq_len, self.config.block_size)
            self._rope = kernels.build_rope_cache(length, self.config.head_size, self.config.rope_base, device)
        return self._rope

    def set_kv_cache(self, batch_size: int, max_seq_length: Optional[int] = None, device=None, dtype=None) -> None:
        max_seq_length = max_seq_length or self.config.block_size
        device = device or self.lm_head.weight.device
        dtype = dtype or self.lm_head.weight.dtype
        for block in self.transformer.h:
            block.attn.kv_cache = KVCache(batch_size, self.config.n_query_groups, max_seq_length, self.config.head_size, device, dtype)

    def clear_kv_cache(self) -> None:
        for block in self.transformer.h:
            block.attn.kv_cache = None

    def forward(
        self,
        idx: torch.Tensor,
        targets: Optional[torch.Tensor] = None,
        input_pos: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        B, T = idx.shape
        if input_pos is None and T > self.config.block_size:
            raise ValueError(f"sequence of length {T} exceeds block_size {self.config.block_size}")
        cos, sin = self.rope_cache(T if input_pos is None else int(input_pos.max()) + 1, idx.device)
        if input_pos is None:
            cos, sin = cos[:T], sin[:T]
        else:
            cos, sin = cos.index_select(0, input_pos), sin.index_select(0, input_pos)

        x = self.transformer.wte(idx)  # (B, T, d)
        for block in self.transformer.h:
            x = block(x, cos, sin, input_pos)
        x = self.transformer.ln_f(x)
        if targets is not None:
            return linear_cross_entropy(x, self.lm_head.weight, targets, IGNORE_INDEX, self.loss_chunk_size, fused=self.fused)
        return self.lm_head(x)  # (B, T, padded_vocab_size)


def flops_per_token(config: Config, seq_len: int) -> float:
    """Training FLOPs per token: 6N (forward + backward of every weight) + 12·L·d·T (attention)."""
    n_params = count_parameters(config)
    return 6 * n_params + 12 * config.n_layer * config.n_embd * seq_len


def count_parameters(config: Config) -> int:
    """Parameters of `GPT(config)`, computed from the shape (no model is built)."""
    d, c = config.n_embd, config
    attn = d * (c.n_head + 2 * c.n_query_groups) * c.head_size + c.n_head * c.head_size * d
    mlp = 3 * d * c.intermediate_size
    per_layer = attn + mlp + 2 * d
    return c.n_layer * per_layer + 2 * c.padded_vocab_size * d + d
