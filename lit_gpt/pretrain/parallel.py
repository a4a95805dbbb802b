"""Sharded data parallelism (FSDP2): `parallelize(model, mesh, ...)` and the Fabric strategy that calls it.

The model file knows nothing of this: activation checkpointing wraps each `Block` first, then
`fully_shard` shards each block (one all-gather per block in forward and backward) and finally the
root (embedding, final norm, head). The same code runs on GPUs (NCCL) and on CPU processes (gloo).

`--fsdp_sharding` keeps the names users know from FSDP1 and maps them to FSDP2:
  FULL_SHARD     reshard_after_forward=True: parameters are freed after each block's forward
                 and gathered again for its backward (least memory);
  SHARD_GRAD_OP  reshard_after_forward=False: gathered parameters stay until the backward
                 (one all-gather fewer per block, more memory; ZeRO-2-like);
  HYBRID_SHARD   a 2-D mesh (nodes x devices per node): shards within a node, replicates across
                 nodes (gradients all-reduced between the replicas); on one node, FULL_SHARD;
  NO_SHARD       has no FSDP2 meaning; refused (use --strategy ddp).
"""

from __future__ import annotations

from functools import partial
from typing import Optional

import torch
import torch.nn as nn

from lit_gpt.model import Block

SHARDING = ("FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD")  # the --fsdp_sharding values FSDP2 has


def mixed_precision_policy(precision: str):
    """bf16-mixed: compute in bf16, keep fp32 shards and reduce gradients in fp32 (as torchtitan)."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if precision == "bf16-mixed":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return MixedPrecisionPolicy()  # 32-true, bf16-true: parameters are used in the dtype they were built in


def apply_activation_checkpointing(model: nn.Module) -> None:
    """Recompute each Block in backward; the wrapper keeps parameter names (no prefix in state dicts)."""
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing as apply

    apply(model, check_fn=lambda m: isinstance(m, Block))


def parallelize(
    model: nn.Module,
    mesh,
    precision: str = "32-true",
    sharding: str = "FULL_SHARD",
    activation_checkpointing: bool = False,
) -> nn.Module:
    """Shards `model` (a GPT, possibly with compiled blocks) in place over `mesh` and returns it.

    mesh: a 1-D DeviceMesh over every process, or for HYBRID_SHARD a 2-D mesh (replicate, shard).
    Activation checkpointing is applied before sharding, so each checkpointed region is one
    FSDP unit; blocks compiled with `lit_gpt.compile.compile_blocks` stay compiled.
    """
    from torch.distributed.fsdp import fully_shard

    if sharding not in SHARDING:
        raise ValueError(f"fsdp sharding {sharding!r} is not one of {', '.join(SHARDING)}")
    if activation_checkpointing:
        apply_activation_checkpointing(model)
    policy = mixed_precision_policy(precision)
    reshard = sharding != "SHARD_GRAD_OP"
    blocks = model.transformer.h
    for i, block in enumerate(blocks):
        # The last block's parameters are needed again at once by the backward: keep them gathered.
        fully_shard(block, mesh=mesh, mp_policy=policy, reshard_after_forward=reshard and i < len(blocks) - 1)
    fully_shard(model, mesh=mesh, mp_policy=policy, reshard_after_forward=False)
    return model


def _parallelize_on_mesh(model: nn.Module, device_mesh, hybrid: bool, **kwargs) -> nn.Module:
    # Fabric's mesh is (data_parallel, tensor_parallel); we size it (world, 1) or, for HYBRID_SHARD,
    # (nodes, devices per node), whose two dimensions FSDP2 reads as (replicate, shard).
    mesh = device_mesh if hybrid else device_mesh["data_parallel"]
    return parallelize(model, mesh, **kwargs)


def fsdp_strategy(
    devices: int,
    num_nodes: int,
    precision: str,
    sharding: str = "FULL_SHARD",
    activation_checkpointing: bool = False,
    checkpoint_format: str = "full",
):
    """Lightning Fabric's ModelParallelStrategy with `parallelize` as its parallelize_fn.

    Fabric keeps launching the processes, the precision plugin and the collectives; checkpoints
    are written by `lit_gpt.pretrain.checkpoint` (full file or torch.distributed.checkpoint folder).
    """
    from lightning.fabric.strategies import ModelParallelStrategy

    hybrid = sharding == "HYBRID_SHARD"
    fn = partial(_parallelize_on_mesh, hybrid=hybrid, precision=precision, sharding=sharding,
                 activation_checkpointing=activation_checkpointing)
    return ModelParallelStrategy(
        parallelize_fn=fn,
        data_parallel_size=num_nodes if hybrid else devices * num_nodes,
        tensor_parallel_size=devices if hybrid else 1,
        save_distributed_checkpoint=checkpoint_format == "sharded",
    )


def full_tensor(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A sharded (DTensor) result such as FSDP2's gradient norm as a plain tensor; others unchanged."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t
