"""The work each configuration times: the trainer's batches, Fabric and optimizer."""

from __future__ import annotations

import gc

import torch
import torch.nn as nn

from lit_gpt.config import Config
from lit_gpt.meap import MEAPCollator


def make_batches(
    config: Config, batch_size: int, seq_len: int, mask_ratio: float, count: int, seed: int, device: torch.device
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """`count` distinct micro batches prepared as the trainer prepares them.

    Random token blocks of T+1 tokens go through the trainer's collate step (`MEAPCollator`,
    which masks the inputs), are pinned and copied to the device without blocking the host.
    The mask id is the vocabulary's last id (the `[MASK]` of the *_mask shapes; a stand-in for
    shapes without one, which changes no FLOP).
    """
    mask_id = config.vocab_size - 1
    collate = MEAPCollator(mask_ratio=mask_ratio, mask_token_id=mask_id, seed=seed)
    gen = torch.Generator().manual_seed(seed)
    batches = []
    for i in range(count):
        blocks = torch.randint(0, mask_id, (batch_size, seq_len + 1), generator=gen)
        inputs, targets = collate(blocks, step=i, micro_step=0)
        if device.type == "cuda":
            inputs, targets = inputs.pin_memory(), targets.pin_memory()
        batches.append((inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)))
    return batches


def make_fabric(device: torch.device, precision: str):
    import lightning as L

    return L.Fabric(accelerator=device.type, devices=1, precision=precision)


def make_optimizer(model: nn.Module, device: torch.device) -> torch.optim.Optimizer:
    # The upstream recipe's AdamW; fused (one kernel for all parameters) on CUDA.
    return torch.optim.AdamW(
        model.parameters(), lr=4e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=device.type == "cuda"
    )


def free_device_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
