"""Model shapes: the `Config` dataclass and the registry of named shapes.

Field names follow upstream lit_gpt / TinyLlama so their config dicts load unchanged.
"""

from __future__ import annotations

import difflib
from dataclasses import asdict, dataclass, fields
from typing import Any, Optional


def find_multiple(n: int, k: int) -> int:
    """Smallest multiple of k that is >= n."""
    return n if n % k == 0 else n + k - (n % k)


@dataclass
class Config:
    name: str = ""
    org: str = "MEAP"
    block_size: int = 4096
    vocab_size: int = 32000
    padding_multiple: int = 64
    padded_vocab_size: Optional[int] = None
    n_layer: int = 16
    n_head: int = 32
    n_embd: int = 4096
    n_query_groups: Optional[int] = None
    intermediate_size: Optional[int] = None
    head_size: Optional[int] = None
    norm_eps: float = 1e-5
    rope_base: int = 10000
    # Accepted so upstream config dicts carry over; only the LLaMA values are supported.
    rotary_percentage: float = 1.0
    parallel_residual: bool = False
    bias: bool = False

    def __post_init__(self) -> None:
        if self.padded_vocab_size is None:
            self.padded_vocab_size = find_multiple(self.vocab_size, self.padding_multiple)
        if self.n_query_groups is None:
            self.n_query_groups = self.n_head
        if self.head_size is None:
            if self.n_embd % self.n_head:
                raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
            self.head_size = self.n_embd // self.n_head
        if self.intermediate_size is None:
            # LLaMA's rule: 2/3 of 4*d, rounded up to a multiple of 256.
            self.intermediate_size = find_multiple(int(8 * self.n_embd / 3), 256)
        problems = []
        if self.padded_vocab_size < self.vocab_size:
            problems.append(f"padded_vocab_size ({self.padded_vocab_size}) < vocab_size ({self.vocab_size})")
        if self.n_head % self.n_query_groups:
            problems.append(f"n_head ({self.n_head}) must be divisible by n_query_groups ({self.n_query_groups})")
        if self.head_size % 2:
            problems.append(f"head_size ({self.head_size}) must be even for RoPE")
        if self.rotary_percentage != 1.0:
            problems.append("only rotary_percentage=1.0 (RoPE over the full head) is supported")
        if self.parallel_residual or self.bias:
            problems.append("only the LLaMA block is supported (parallel_residual=False, bias=False)")
        for name in ("block_size", "n_layer", "n_head", "n_embd", "intermediate_size"):
            if getattr(self, name) <= 0:
                problems.append(f"{name} must be positive")
        if problems:
            raise ValueError(f"invalid config {self.name!r}: " + "; ".join(problems))

    @property
    def q_per_kv(self) -> int:
        return self.n_head // self.n_query_groups

    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "Config":
        if name not in name_to_config:
            close = difflib.get_close_matches(name, name_to_config, n=5, cutoff=0.3)
            hint = f" Closest known names: {', '.join(close)}." if close else ""
            raise ValueError(f"unknown model name {name!r}.{hint} All: {', '.join(sorted(name_to_config))}")
        return cls(**{**name_to_config[name], **overrides})

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides: Any) -> "Config":
        """Builds a config from a dict, also from an upstream lit_gpt dict with extra keys.

        Upstream keys that only chose a kernel (`_norm_class`, `_mlp_class`, ...) are checked to be
        LLaMA-compatible and dropped; any other unknown key is an error.
        """
        known = {f.name for f in fields(cls)}
        data = {**data, **overrides}
        unknown = {k: v for k, v in data.items() if k not in known}
        llama_only = {
            "_norm_class": {"RMSNorm", "FusedRMSNorm"},
            "_mlp_class": {"LLaMAMLP"},
            "shared_attention_norm": {False},
            "condense_ratio": {1},
        }
        for key, value in unknown.items():
            if key not in llama_only:
                raise ValueError(f"unknown config key {key!r}")
            if value not in llama_only[key]:
                raise ValueError(f"unsupported {key}={value!r}: only the LLaMA architecture is supported")
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Each shape sets these fields; the others keep the defaults of `Config`, which are LLaMA's.
_SHAPE_FIELDS = ("block_size", "vocab_size", "n_layer", "n_embd", "n_head", "n_query_groups", "intermediate_size")
_SHAPES = {
    # The four MEAP shapes of the paper. vocab_size is 32064 as upstream records it: LLaMA-2's 32000
    # tokens plus `[MASK]` (id 32000), padded to a multiple of 64 (upstream sets padded_vocab_size to
    # vocab_size). Ids 32001..32063 are never produced by the tokenizer.
    "tiny_LLaMA_0.1b_mask": (4096, 32064, 12, 768, 12, 2, 2048),
    "tiny_LLaMA_300M_mask": (4096, 32064, 24, 1024, 16, 2, 2736),
    "tiny_LLaMA_0.5b_mask": (4096, 32064, 24, 1024, 16, 2, 4864),
    "tiny_LLaMA_1b_mask": (4096, 32064, 24, 2048, 32, 2, 5632),
    # TinyLlama-1.1B as released (so its weights can be imported and benchmarked).
    "tiny_LLaMA_1b": (2048, 32000, 22, 2048, 32, 4, 5632),
    # Small shapes that train on a laptop CPU in minutes. Their vocab_size is a placeholder:
    # recipes replace it with the size of the tokenizer they are given.
    "micro_LLaMA": (256, 4096, 2, 64, 4, 2, 176),
    "pico_LLaMA": (256, 4096, 4, 128, 4, 2, 352),
    "nano_LLaMA": (512, 4096, 6, 256, 8, 2, 704),
}
name_to_config: dict[str, dict[str, Any]] = {
    name: dict(name=name, **dict(zip(_SHAPE_FIELDS, shape))) for name, shape in _SHAPES.items()
}
