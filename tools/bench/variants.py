"""The models compared: the project's kernel sets and Hugging Face's Llama (plain and with Liger)."""

from __future__ import annotations

import contextlib
from typing import Iterator, Optional

import torch
import torch.nn as nn

from lit_gpt import kernels
from lit_gpt.compile import compile_blocks
from lit_gpt.config import Config
from lit_gpt.model import GPT

VARIANTS = {
    "eager": "GPT(fused=False): PyTorch reference kernels, SDPA attention, chunked linear CE",
    "fused": "GPT(fused=True): Liger RMSNorm/RoPE/SwiGLU/fused linear CE on CUDA, flash-attn if installed",
    "compile": "GPT(fused=True) + lit_gpt.compile.compile_blocks: each Block torch.compile'd, loss fused",
    "hf": "transformers LlamaForCausalLM, SDPA attention",
    "hf_liger": "LlamaForCausalLM + Liger apply_liger_kernel_to_llama(rope, rms_norm, swiglu, fused_linear_cross_entropy)",
}
PROJECT_VARIANTS = ("eager", "fused", "compile")


class HFCausalLM(nn.Module):
    """`model(inputs, targets=t)` -> mean loss for a transformers causal LM, as train_step calls it.

    `shift_labels` hands the targets over unshifted, so the loss covers the same T targets as ours.
    `module_globals` (module, {name: value}) are set in that module during each forward only.
    """

    def __init__(self, hf_model: nn.Module, module_globals: Optional[tuple] = None) -> None:
        super().__init__()
        self.hf = hf_model
        self.module_globals = module_globals

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        scope = swapped_globals(*self.module_globals) if self.module_globals else contextlib.nullcontext()
        with scope:
            return self.hf(input_ids=inputs, labels=targets, shift_labels=targets).loss


@contextlib.contextmanager
def swapped_globals(module, values: dict) -> Iterator[None]:
    saved = {name: getattr(module, name) for name in values}
    try:
        for name, value in values.items():
            setattr(module, name, value)
        yield
    finally:
        for name, value in saved.items():
            setattr(module, name, value)


# Module-wide names that apply_liger_kernel_to_llama replaces (liger-kernel 0.8.5); everything
# else it patches on the model instance it is given.
_LIGER_LLAMA_GLOBALS = ("apply_rotary_pos_emb", "LlamaRMSNorm", "LlamaMLP")


def _liger_llama(hf: nn.Module) -> HFCausalLM:
    """Liger's kernels on `hf` only: the module-wide replacements are undone at once and set again
    during this model's forward, so a plain HF model in the same run keeps transformers' code."""
    from liger_kernel.transformers import apply_liger_kernel_to_llama
    from transformers.models.llama import modeling_llama

    with swapped_globals(modeling_llama, {name: getattr(modeling_llama, name) for name in _LIGER_LLAMA_GLOBALS}):
        # Signature checked against liger-kernel 0.8.5 (transformers/monkey_patch.py).
        apply_liger_kernel_to_llama(
            rope=True, cross_entropy=False, fused_linear_cross_entropy=True, rms_norm=True, swiglu=True, model=hf
        )
        patched = {name: getattr(modeling_llama, name) for name in _LIGER_LLAMA_GLOBALS}
    return HFCausalLM(hf, module_globals=(modeling_llama, patched))


def hf_llama_config(config: Config):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=config.padded_vocab_size,
        hidden_size=config.n_embd,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        num_key_value_heads=config.n_query_groups,
        head_dim=config.head_size,
        max_position_embeddings=config.block_size,
        rms_norm_eps=config.norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": float(config.rope_base)},
        tie_word_embeddings=False,
        use_cache=False,  # a KV cache built during training would only cost memory
        attention_dropout=0.0,
    )


def build_model(variant: str, config: Config, compile_kwargs: Optional[dict] = None) -> nn.Module:
    """The module train_step will call, built on the current device (inside fabric.init_module()).

    `compile_kwargs` go to `torch.compile` in the compile variant (default: Inductor)."""
    if variant == "eager":
        return GPT(config, fused=False)
    if variant == "fused":
        return GPT(config, fused=True)
    if variant == "compile":
        return compile_blocks(GPT(config, fused=True), **(compile_kwargs or {}))
    from transformers import LlamaForCausalLM

    hf = LlamaForCausalLM._from_config(hf_llama_config(config), attn_implementation="sdpa")
    hf.train()  # Liger's loss skips the logits only in training mode
    return _liger_llama(hf) if variant == "hf_liger" else HFCausalLM(hf)


def variant_kernels(variant: str, device: torch.device) -> dict:
    if variant == "eager":
        return kernels.active_kernels(device, fused=False)
    if variant == "fused":
        return kernels.active_kernels(device, fused=True)
    if variant == "compile":
        loss = kernels.active_kernels(device, fused=True)["loss"]
        return {"blocks": "torch.compile(reference kernels)", "attention": "torch_sdpa", "loss": loss}
    return {"model": "transformers", "liger": variant == "hf_liger"}


def skip_reason(variant: str, device: torch.device) -> Optional[str]:
    if variant in ("hf", "hf_liger") and not kernels.package_available("transformers"):
        return "transformers not installed"
    if variant == "hf_liger":
        if device.type != "cuda":
            return "Liger-Kernel needs CUDA"
        if not kernels.liger_available():
            return "liger-kernel not installed"
    return None
