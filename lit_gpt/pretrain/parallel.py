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

Initialisation (as torchtitan): the model is built on the meta device, sharded, then each rank
allocates only its shards (`to_empty`) and fills them from `initial_weights`, which replays the
random draws of `GPT(config)` built on the CPU one unit (head, embedding, block, final norm) at a
time. So the weights are bit-identical to an unsharded model's for the same seed, whatever the
number of processes, while a rank never holds more than its shards plus one full unit.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterator, Optional

import torch
import torch.nn as nn

from lit_gpt.config import Config
from lit_gpt.errors import UserError
from lit_gpt.model import GPT, Block, RMSNorm

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


@torch.no_grad()
def initial_weights(config: Config, dtype: torch.dtype = torch.float32) -> Iterator[dict[str, torch.Tensor]]:
    """The initial weights of `GPT(config)` built on the CPU now (from the current RNG state), one unit at a time.

    GPT draws twice: each Linear/Embedding's default init while it is built, then
    `GPT._init_weights` over the whole model. Both passes are replayed in their order on CPU
    tensors of the same shape and dtype (the first pass's values are thrown away), so the random
    stream, and every value, is the same as building the whole model. All blocks share one
    scratch block (a yielded unit is only valid until the next is asked for), so the memory is
    that of the head, the embedding and one block, allocated once.
    """
    with torch.device("meta"):
        template = GPT(config, fused=False).to(dtype)
    t = template.transformer
    scratch_block = t.h[0]
    units = [("lm_head", template.lm_head), ("transformer.wte", t.wte),
             *[(f"transformer.h.{i}", scratch_block) for i in range(config.n_layer)], ("transformer.ln_f", t.ln_f)]
    for unit in (template.lm_head, t.wte, scratch_block, t.ln_f):
        unit.to_empty(device="cpu")
    for _, unit in units:  # pass 1: the default inits done while building
        for module in unit.modules():
            if next(module.children(), None) is None and hasattr(module, "reset_parameters"):
                module.reset_parameters()
    for name, unit in units:  # pass 2: GPT._init_weights, in apply's (children first) order
        for module in unit.modules():
            if isinstance(module, RMSNorm):
                module.reset_parameters()  # ones: no random draw
        unit.apply(template._init_weights)
        yield {f"{name}.{key}": value for key, value in unit.state_dict().items()}


_WRAPPER = "_checkpoint_wrapped_module."  # inserted by activation checkpointing, absent from state dicts


def _local_part(value: torch.Tensor, param) -> torch.Tensor:
    """This rank's part of a full tensor for a DTensor's placements, as a view (DTensor's chunking)."""
    from torch.distributed.tensor import distribute_tensor

    mesh, coordinate = param.device_mesh, param.device_mesh.get_coordinate()
    local = value
    for mesh_dim, placement in enumerate(param.placements):
        if placement.is_shard():
            pieces = torch.chunk(local, mesh.size(mesh_dim), dim=placement.dim)
            index = coordinate[mesh_dim]
            local = pieces[index] if index < len(pieces) else local.narrow(placement.dim, 0, 0)
        elif not placement.is_replicate():
            local = None
            break
    if local is None or local.shape != param.to_local().shape:  # any other layout: DTensor slices it
        local = distribute_tensor(value, mesh, param.placements, src_data_rank=None).to_local()
    return local


@torch.no_grad()
def copy_full_weights(model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
    """Copies full tensors into `model`'s parameters, each rank keeping only its shard of a DTensor
    (every rank holds the full value, so nothing is communicated)."""
    from torch.distributed.tensor import DTensor

    params = {name.replace(_WRAPPER, ""): p for name, p in model.named_parameters()}
    for name, value in weights.items():
        param = params[name]
        if isinstance(param, DTensor):
            param.to_local().copy_(_local_part(value, param))
        else:
            param.copy_(value)


def init_weights(model: nn.Module, config: Config) -> None:
    """Fills a sharded (or plain) GPT with the initial weights of `GPT(config)` for the current RNG state."""
    dtype = next(model.parameters()).dtype
    for unit in initial_weights(config, dtype):
        copy_full_weights(model, unit)


def materialize(model: nn.Module, device: torch.device, init: Callable[[nn.Module], None]) -> None:
    """Allocates a meta-device model's (sharded) parameters on `device` and initialises them with `init`."""
    if any(p.is_meta for p in model.parameters()):
        model.to_empty(device=device)
        init(model)


def _parallelize_on_mesh(model: nn.Module, device_mesh, hybrid: bool,
                         init: Optional[Callable[[nn.Module], None]] = None, **kwargs) -> nn.Module:
    # Fabric's mesh is (data_parallel, tensor_parallel); we size it (world, 1) or, for HYBRID_SHARD,
    # (nodes, devices per node), whose two dimensions FSDP2 reads as (replicate, shard).
    mesh = device_mesh if hybrid else device_mesh["data_parallel"]
    model = parallelize(model, mesh, **kwargs)
    if init is not None:
        # Here, not in Fabric's own materialisation, which would run every reset_parameters on the shards.
        device = torch.device("cuda", torch.cuda.current_device()) if mesh.device_type == "cuda" else torch.device("cpu")
        materialize(model, device, init)
    return model


def fsdp_strategy(
    devices: int,
    num_nodes: int,
    precision: str,
    sharding: str = "FULL_SHARD",
    activation_checkpointing: bool = False,
    checkpoint_format: str = "full",
    init: Optional[Callable[[nn.Module], None]] = None,
):
    """Lightning Fabric's ModelParallelStrategy with `parallelize` as its parallelize_fn.

    init: fills the shards of a model built on the meta device, once sharded (see `init_weights`).

    Fabric keeps launching the processes, the precision plugin and the collectives; checkpoints
    are written by `lit_gpt.pretrain.checkpoint` (full file or torch.distributed.checkpoint folder).
    """
    from lightning.fabric.strategies import ModelParallelStrategy

    hybrid = sharding == "HYBRID_SHARD"
    fn = partial(_parallelize_on_mesh, hybrid=hybrid, init=init, precision=precision, sharding=sharding,
                 activation_checkpointing=activation_checkpointing)
    return ModelParallelStrategy(
        parallelize_fn=fn,
        data_parallel_size=num_nodes if hybrid else devices * num_nodes,
        tensor_parallel_size=devices if hybrid else 1,
        save_distributed_checkpoint=checkpoint_format == "sharded",
    )


def check_process_layout(devices: int, num_nodes: int, sharding: str, env=None) -> None:
    """Refuses, before launch, a launcher whose processes do not form the --num_nodes x --devices mesh
    (torchrun's LOCAL_WORLD_SIZE, a SLURM job step's tasks per node and nodes): HYBRID_SHARD would
    shard across nodes, and every strategy would pick devices by a local rank it does not have."""
    import os
    import re

    env = os.environ if env is None else env
    if "TORCHELASTIC_RUN_ID" in env:
        per_node, nodes, source = env.get("LOCAL_WORLD_SIZE"), None, "torchrun's LOCAL_WORLD_SIZE"
    elif "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive"):  # as Lightning detects srun
        per_node, nodes, source = env.get("SLURM_NTASKS_PER_NODE"), env.get("SLURM_NNODES"), "SLURM"
    else:
        return
    per_node, nodes = (int(m.group()) if v and (m := re.match(r"\d+", v)) else None for v in (per_node, nodes))
    mesh = f" (HYBRID_SHARD shards over the {devices} processes of each node)" if sharding == "HYBRID_SHARD" else ""
    if per_node is not None and per_node != devices:
        raise UserError(f"--devices {devices}: {source} starts {per_node} processes per node; set --devices {per_node}{mesh}")
    if nodes is not None and nodes != num_nodes:
        raise UserError(f"--num_nodes {num_nodes}: the SLURM job step has {nodes} nodes; set --num_nodes {nodes}{mesh}")


def full_tensor(t: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """A sharded (DTensor) result such as FSDP2's gradient norm as a plain tensor; others unchanged."""
    from torch.distributed.tensor import DTensor

    return t.full_tensor() if isinstance(t, DTensor) else t
