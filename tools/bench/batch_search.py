"""`--micro_batch_size auto`: the largest micro batch that fits beside the other variants (CUDA)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from tools.bench import workload
from lit_gpt.config import Config
from lit_gpt.model import GPT, count_parameters

if TYPE_CHECKING:  # run.py imports this module
    from tools.bench.run import BenchSettings

def resident_bytes_per_model(config: Config, precision: str) -> int:
    """Weights and AdamW's two moments, which stay on the device between steps (gradients are freed)."""
    bytes_per_value = 2 if precision == "bf16-true" else 4
    return 3 * bytes_per_value * count_parameters(config)


def largest_micro_batch(config: Config, settings: BenchSettings, device: torch.device, precision: str,
                        others_resident: int) -> dict:
    """The largest micro batch whose `fused` training step fits beside the other variants.

    Peak memory is affine in the micro batch: two probe steps (B = 1, 2) give its slope, which
    predicts the largest B under 94% of the card minus `others_resident` bytes (the weights and
    optimizer states of the other variants, resident for the whole run); that B is then tried,
    stepping down on OOM. Variants that need more memory per sequence than `fused` may still OOM.
    """
    from lit_gpt.pretrain.step import train_step

    capacity = torch.cuda.get_device_properties(device).total_memory
    fabric = workload.make_fabric(device, precision)
    with fabric.init_module():
        model = GPT(config, fused=True)
    model = fabric.setup(model)
    optimizer = fabric.setup_optimizers(workload.make_optimizer(model, device))

    def peak_of(batch_size: int) -> int:
        batch = workload.make_batches(config, batch_size, settings.seq_len, 0.0, 1, settings.seed, device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(2):  # the first step also allocates the optimizer state
            train_step(fabric, model, optimizer, batch, grad_clip=1.0)
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device)

    budget = 0.94 * capacity - others_resident
    probes_peak = {1: peak_of(1), 2: peak_of(2)}
    slope = max(1, probes_peak[2] - probes_peak[1])
    predicted = max(1, int((budget - probes_peak[1]) // slope) + 1)
    chosen = predicted
    while chosen >= 1:
        try:
            if peak_of(chosen) <= budget or chosen == 1:
                break
        except torch.cuda.OutOfMemoryError:
            workload.free_device_memory(device)
        chosen = chosen - 1 if chosen <= 8 else int(chosen * 0.9)
    model = optimizer = fabric = None
    workload.free_device_memory(device)
    return {"probe_peak_gib": {b: p / 2**30 for b, p in probes_peak.items()}, "capacity_gib": capacity / 2**30,
            "others_resident_gib": others_resident / 2**30, "predicted": predicted, "chosen": chosen}
