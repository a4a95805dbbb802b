"""torch.compile of the transformer blocks, in place.

Each `Block` is compiled on its own (`nn.Module.compile`, which keeps the module and its
parameter names: no `_orig_mod.` prefix in checkpoints, FSDP wraps the same modules). All blocks
share one structure, so Dynamo traces and Inductor compiles one graph, reused by every block.
The embedding, final norm and loss stay eager: the loss has its own chunked/fused kernel.

Inside a compiled block the PyTorch reference kernels run, not Liger's: Inductor fuses RMSNorm,
RoPE, SwiGLU and the residual adds itself, and Liger's Triton autograd Functions would otherwise
have to be traced through (or break the graph). Attention stays `scaled_dot_product_attention`.
"""

from __future__ import annotations

import torch.nn as nn


def compile_blocks(model: nn.Module, **compile_kwargs) -> nn.Module:
    """Compiles every block of `model.transformer.h` in place and returns `model`; `compile_kwargs` go to
    `torch.compile`."""
    blocks = getattr(getattr(model, "transformer", None), "h", None)
    if blocks is None:
        raise TypeError(f"{type(model).__name__} has no transformer.h blocks to compile")
    for block in blocks:
        for module in block.modules():
            # `fused` is a plain attribute that only selects a kernel; parameters are untouched.
            if hasattr(module, "fused"):
                module.fused = False
        block.compile(**compile_kwargs)
    return model


def is_compiled(module: nn.Module) -> bool:
    """True when `module` was compiled in place with `nn.Module.compile`."""
    return getattr(module, "_compiled_call_impl", None) is not None

