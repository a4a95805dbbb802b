"""The mapping between lit_gpt and Hugging Face `LlamaForCausalLM` weights and configs.

Every key has an explicit template, and the fused q/k/v weight is split and merged by head counts,
so a layout change on either side fails loudly instead of producing a silently wrong model.
Both sides use the "rotate half" RoPE layout over the full head, so q and k rows need no permutation.
"""

from __future__ import annotations

import itertools
import re
from typing import Any, Iterator, Mapping, Optional

import torch

from lit_gpt.config import Config
from lit_gpt.errors import UserError
from lit_gpt.tokenizer import TokenizerInfo

# lit key template -> HF key template; `{}` is the layer index. The fused q/k/v weight is handled apart.
LIT_TO_HF: dict[str, str] = {
    "transformer.wte.weight": "model.embed_tokens.weight",
    "transformer.h.{}.norm_1.weight": "model.layers.{}.input_layernorm.weight",
    "transformer.h.{}.attn.proj.weight": "model.layers.{}.self_attn.o_proj.weight",
    "transformer.h.{}.norm_2.weight": "model.layers.{}.post_attention_layernorm.weight",
    "transformer.h.{}.mlp.swiglu.w1.weight": "model.layers.{}.mlp.gate_proj.weight",
    "transformer.h.{}.mlp.swiglu.w2.weight": "model.layers.{}.mlp.up_proj.weight",
    "transformer.h.{}.mlp.swiglu.w3.weight": "model.layers.{}.mlp.down_proj.weight",
    "transformer.ln_f.weight": "model.norm.weight",
    "lm_head.weight": "lm_head.weight",
}
LIT_QKV = "transformer.h.{}.attn.attn.weight"
HF_QKV = tuple(f"model.layers.{{}}.self_attn.{p}_proj.weight" for p in "qkv")

# HF buffers and optional entries that carry no weights of their own.
_HF_IGNORED = re.compile(r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq|model\.rotary_emb\.inv_freq")


def split_qkv(qkv: torch.Tensor, config: Config) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """lit's fused weight, per query group [q_per_kv query heads, 1 key head, 1 value head], -> q, k, v."""
    ng, hs = config.n_query_groups, config.head_size
    q, k, v = qkv.view(ng, config.q_per_kv + 2, hs, -1).split((config.q_per_kv, 1, 1), dim=1)
    return q.reshape(config.n_head * hs, -1), k.reshape(ng * hs, -1), v.reshape(ng * hs, -1)


def merge_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, config: Config) -> torch.Tensor:
    ng, hs = config.n_query_groups, config.head_size
    d = q.size(-1)
    grouped = torch.cat(
        (q.reshape(ng, config.q_per_kv, hs, d), k.reshape(ng, 1, hs, d), v.reshape(ng, 1, hs, d)), dim=1
    )  # (ng, q_per_kv + 2, hs, d)
    return grouped.reshape(-1, d)


def lit_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """Key -> shape of `GPT(config)`'s state dict, from a model built on the meta device (no memory)."""
    from lit_gpt.model import GPT

    with torch.device("meta"):
        model = GPT(config, fused=False)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def hf_shapes(config: Config) -> dict[str, tuple[int, ...]]:
    """The HF key -> shape of every weight of `config`: lit's shapes through the key map, on the meta device."""
    meta = {key: torch.empty(shape, device="meta") for key, shape in lit_shapes(config).items()}
    return {key: tuple(make().shape) for key, make in lit_to_hf_items(meta, config)}


def lit_to_hf_items(sd: Mapping[str, torch.Tensor], config: Config) -> Iterator[tuple[str, Any]]:
    """Yields (HF key, zero-argument function giving the tensor) in HF order, so that a caller can write
    shard by shard; `sd` must already be checked against `config`."""
    yield "model.embed_tokens.weight", lambda: sd["transformer.wte.weight"]
    for i in range(config.n_layer):
        qkv_key = LIT_QKV.format(i)
        for j, hf_key in enumerate(HF_QKV):
            yield hf_key.format(i), (lambda key=qkv_key, j=j: split_qkv(sd[key], config)[j])
        for lit, hf in LIT_TO_HF.items():
            if "{}" in lit:
                yield hf.format(i), (lambda key=lit.format(i): sd[key])
    yield "model.norm.weight", lambda: sd["transformer.ln_f.weight"]
    yield "lm_head.weight", lambda: sd["lm_head.weight"]


def lit_to_hf_state_dict(sd: Mapping[str, torch.Tensor], config: Config) -> dict[str, torch.Tensor]:
    return {key: make() for key, make in lit_to_hf_items(sd, config)}


def hf_to_lit_state_dict(sd: Mapping[str, torch.Tensor], config: Config,
                         what: str = "Hugging Face weights") -> dict[str, torch.Tensor]:
    """HF LLaMA weights -> lit weights (tied ones, without `lm_head.weight`, get an untied copy of the
    embedding); UserError `what: ...` naming what is missing or misshapen."""
    sd = {k: v for k, v in sd.items() if not _HF_IGNORED.fullmatch(k)}
    if "lm_head.weight" not in sd and "model.embed_tokens.weight" in sd:
        sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
    check_keys_and_shapes(sd, hf_shapes(config), what)
    out = {lit.format(i): sd[hf.format(i)] for lit, hf in LIT_TO_HF.items()
           for i in (range(config.n_layer) if "{}" in lit else (0,))}  # format(0) leaves a global key as it is
    for i in range(config.n_layer):
        q, k, v = (sd[t.format(i)] for t in HF_QKV)
        out[LIT_QKV.format(i)] = merge_qkv(q, k, v, config)
    return out


def check_keys_and_shapes(sd: Mapping[str, Any], expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    """UserError `what: ...` listing, on one line, every missing key, unexpected key and wrong shape."""
    wrong = [f"{key} {list(sd[key].shape)} (expected {list(shape)})" for key, shape in expected.items()
             if key in sd and tuple(sd[key].shape) != tuple(shape)]
    found = {
        "missing keys": summarize_keys([k for k in expected if k not in sd]),
        "unexpected keys": summarize_keys([k for k in sd if k not in expected]),
        "wrong shapes": ", ".join(wrong[:6]) + (f" and {len(wrong) - 6} more" if len(wrong) > 6 else ""),
    }
    problems = [f"{label}: {text}" for label, text in found.items() if text]
    if problems:
        raise UserError(f"{what}: " + "; ".join(problems))


def summarize_keys(keys: list[str], limit: int = 8) -> str:
    """Folds per-layer keys into one entry per template: `transformer.h.{0-21}.attn.attn.weight`."""
    layers: dict[str, list[int]] = {}  # template -> layer indices, in the order first seen
    for key in keys:
        m = re.fullmatch(r"(.*?\.(?:h|layers))\.(\d+)\.(.*)", key)
        ids = layers.setdefault(f"{m.group(1)}.{{}}.{m.group(3)}" if m else key, [])
        if m:
            ids.append(int(m.group(2)))
    parts = [t.replace("{}", "{" + _ranges(sorted(ids)) + "}") if ids else t for t, ids in layers.items()]
    more = f" and {len(parts) - limit} more" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


def _ranges(ids: list[int]) -> str:
    """[0, 1, 2, 5] -> "0-2,5" (a run of consecutive ids keeps a constant id - position)."""
    runs = [[i for _, i in run] for _, run in itertools.groupby(enumerate(ids), lambda p: p[1] - p[0])]
    return ",".join(str(run[0]) if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)


def hf_config_dict(
    config: Config, tokenizer_info: Optional[TokenizerInfo] = None, dtype: str = "float32"
) -> dict[str, Any]:
    """The `config.json` of the HF model that equals `GPT(config)`: `vocab_size` is the padded vocabulary
    (the rows of the embedding and head); RoPE is written for transformers 4 (`rope_theta`) and 5
    (`rope_parameters`); BOS/EOS are the tokenizer's, LLaMA's 1/2 without one."""
    if config.n_embd % config.n_head or config.n_embd // config.n_head != config.head_size:
        # transformers checks hidden_size % num_attention_heads; head_dim alone is not enough there.
        raise UserError(f"{config.name}: head_size {config.head_size} != n_embd / n_head is not supported by LlamaForCausalLM")
    bos, eos = (tokenizer_info.bos_id, tokenizer_info.eos_id) if tokenizer_info is not None else (1, 2)
    rope_theta = float(config.rope_base)
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "hidden_size": config.n_embd, "intermediate_size": config.intermediate_size,
        "num_hidden_layers": config.n_layer, "num_attention_heads": config.n_head,
        "num_key_value_heads": config.n_query_groups, "head_dim": config.head_size, "hidden_act": "silu",
        "max_position_embeddings": config.block_size, "rms_norm_eps": config.norm_eps,
        "rope_theta": rope_theta, "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": rope_theta},
        "attention_bias": False, "attention_dropout": 0.0, "mlp_bias": False,
        "vocab_size": config.padded_vocab_size, "tie_word_embeddings": False,
        "bos_token_id": bos, "eos_token_id": eos, "pad_token_id": None,
        "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": True, "torch_dtype": dtype, "dtype": dtype,
    }


def config_from_hf(hf: Mapping[str, Any], name: str) -> Config:
    """A lit Config from a HF LLaMA `config.json` dict; raises ValueError on what lit_gpt cannot run."""
    problems = []
    if hf.get("model_type", "llama") not in ("llama", "mistral"):
        problems.append(f"model_type {hf.get('model_type')!r} is not llama")
    if hf.get("hidden_act", "silu") != "silu":
        problems.append(f"hidden_act {hf['hidden_act']!r} is not silu")
    if hf.get("attention_bias") or hf.get("mlp_bias"):
        problems.append("biases are not supported")
    if hf.get("sliding_window") not in (None, 0) and hf.get("model_type") == "mistral":
        problems.append("sliding-window attention is not supported")
    rope = hf.get("rope_parameters") or hf.get("rope_scaling") or {}
    rope_type = rope.get("rope_type", rope.get("type", "default"))
    if rope_type != "default":
        problems.append(f"rope type {rope_type!r} is not supported (only plain RoPE)")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size", "vocab_size"):
        if key not in hf:
            problems.append(f"{key} is missing")
    if problems:
        raise ValueError("; ".join(problems))
    theta = rope.get("rope_theta", hf.get("rope_theta", 10000.0))
    n_head = hf["num_attention_heads"]
    return Config(
        name=name, block_size=hf.get("max_position_embeddings", 4096), vocab_size=hf["vocab_size"],
        padded_vocab_size=hf["vocab_size"], n_layer=hf["num_hidden_layers"], n_head=n_head, n_embd=hf["hidden_size"],
        n_query_groups=hf.get("num_key_value_heads") or n_head, intermediate_size=hf["intermediate_size"],
        head_size=hf.get("head_dim") or hf["hidden_size"] // n_head, norm_eps=hf.get("rms_norm_eps", 1e-6),
        rope_base=int(theta) if float(theta).is_integer() else theta,
    )
