"""`--dry_run`: the memory and time plan of a run, printed before anything is launched. The formulas, and how
they were measured against torch's MemTracker (tests/pretrain/test_plan.py), are in docs/SCALING.md.
"""

from __future__ import annotations

import math

import torch

from lit_gpt.config import Config
from lit_gpt.errors import UserError
from lit_gpt.model import GPT, flops_per_token

# precision -> (bytes of a stored parameter, bytes of the compute dtype)
BYTES = {"32-true": (4, 4), "bf16-mixed": (4, 2), "bf16-true": (2, 2), "16-mixed": (4, 2)}
GIB = 2**30


def _elements(params, shard_over: int = 1) -> int:
    return sum(math.ceil(p.shape[0] / shard_over) * (p.numel() // p.shape[0]) for p in params)


def state_bytes(config: Config, precision: str, fsdp: str | None, shard_over: int, ddp: bool) -> dict[str, int]:
    """Weights, gradients, optimizer state and gathered copies per rank (fsdp: the sharding, or None)."""
    s, c = BYTES[precision]
    with torch.device("meta"):
        model = GPT(config, fused=False)
    params = list(model.parameters())
    block = _elements(model.transformer.h[0].parameters())
    root = _elements(params) - config.n_layer * block
    shard = _elements(params, shard_over if fsdp else 1)
    if fsdp is None:
        gathered = c * _elements(params) if c != s else 0
    elif fsdp == "SHARD_GRAD_OP":
        gathered = c * (_elements(params) + root + block)
    else:
        gathered = c * (2 * root + 3 * block)
    return {"params": _elements(params), "weights": s * shard, "grads": s * shard * (2 if ddp else 1),
            "optimizer": 2 * s * shard + 4 * len(params), "gathered": gathered}


def layer_elements(config: Config, fused: bool) -> int:
    """Elements saved for the backward per token by one Block (docs/SCALING.md)."""
    d, h, g, k, inter = config.n_embd, config.n_head, config.n_query_groups, config.head_size, config.intermediate_size
    if fused:
        return 4 * d + (h + 2 * g) * k + h * k + 3 * inter
    return 6 * d + (h + 2 * g) * k + 2 * (h + g) * k + 2 * h * k + 4 * inter


def activation_bytes(config: Config, micro_batch: int, precision: str, fused: bool, checkpointed: bool,
                     loss_chunk: int = 4096) -> int:
    c = BYTES[precision][1]
    tokens, d, V = micro_batch * config.block_size, config.n_embd, config.padded_vocab_size
    layer = tokens * (layer_elements(config, fused) * c + 4 * config.n_head)
    head = tokens * (2 if fused else 3) * d * c + tokens * d * c + 4 * V * d + min(loss_chunk, tokens) * V * (4 + c)
    if checkpointed:  # the head's peak ends with the forward, before any layer is recomputed
        return config.n_layer * tokens * d * c + max(layer, head)
    return config.n_layer * layer + head


def _gib(n: int) -> str:
    return f"{n / GIB:,.2f} GiB"


def print_plan(args) -> int:
    """Prints the plan for `args` (PretrainArgs) and the layout they resolve to; launches nothing, writes nothing."""
    from lit_gpt.pretrain.args import total_steps
    from lit_gpt.pretrain.train import _uses_fsdp, check_layout, model_config

    if args.vocab_from_tokenizer:
        raise UserError("--dry_run with vocab_from_tokenizer: set the vocabulary in model_overrides to plan without the tokenizer")
    accelerator = "cpu" if args.accelerator == "cpu" else "cuda"  # plans for GPUs unless told otherwise
    devices = args.devices if args.devices != -1 else max(torch.cuda.device_count(), 1)
    precision = args.precision or ("bf16-mixed" if accelerator == "cuda" else "32-true")
    world, grad_accum = check_layout(args, accelerator, devices, precision)
    config = model_config(args, 0)
    fsdp = args.fsdp_sharding if _uses_fsdp(args, accelerator, world) else None
    shard_over = (devices if fsdp == "HYBRID_SHARD" and args.num_nodes > 1 else world) if fsdp else 1
    ddp = fsdp is None and world > 1
    fused = args.fused_kernels and accelerator == "cuda"
    plan = state_bytes(config, precision, fsdp, shard_over, ddp)
    acts = {ckpt: activation_bytes(config, args.micro_batch_size, precision, fused, ckpt) for ckpt in (False, True)}
    state = plan["weights"] + plan["grads"] + plan["optimizer"] + plan["gathered"]

    T = config.block_size
    steps = total_steps(args, T)
    tokens = steps * args.global_batch_size * T
    rate = tokens / (args.plan_days * 86400)
    tflops = flops_per_token(config, T) * rate / world / 1e12
    layout = f"FSDP {fsdp}, sharded over {shard_over}" if fsdp else ("DDP" if ddp else "one process")
    ckpt = args.activation_checkpointing
    kernels = "fused kernels" if fused else "PyTorch kernels"
    rows = [
        ("weights", plan["weights"]), ("gradients", plan["grads"]), ("optimizer (AdamW, 2 moments)", plan["optimizer"]),
        ("gathered compute copies", plan["gathered"]),
        ("activations of one micro batch", acts[False]),
        ("  with activation checkpointing", acts[True]),
        (f"total (activation checkpointing {'on' if ckpt else 'off'})", state + acts[ckpt]),
    ]
    print(f"plan (dry run, nothing launched): {config.name}, {plan['params']:,} parameters, block {T}, "
          f"vocab {config.padded_vocab_size}")
    print(f"  {world} x {accelerator} ({args.num_nodes} node(s) x {devices}), {layout}, {precision}, {kernels}; "
          f"micro batch {args.micro_batch_size} x {T}, global {args.global_batch_size} "
          f"({grad_accum} accumulation steps)")
    print("memory per rank (estimate; formulas in lit_gpt/pretrain/plan.py, docs/SCALING.md):")
    for name, value in rows:
        print(f"  {name:<40} {_gib(value):>12}")
    print(f"budget: {steps:,} steps x {args.global_batch_size} x {T} = {tokens:,} tokens ({tokens / 1e9:.1f}B)")
    line = (f"to finish in {args.plan_days:g} days: {rate:,.0f} tokens/s in total, {rate / world:,.0f} per device "
            f"({tflops:.1f} TFLOP/s of model FLOPs per device")
    print(line + (f", MFU {tflops / args.peak_tflops:.0%})" if args.peak_tflops else ")"))
    print("| model | parameters | ranks | weights + grads + optimizer + gathered | activations (checkpointed) "
          "| total (checkpointed) | tokens | tokens/s in total (per device) |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {config.name} | {plan['params'] / 1e6:,.0f}M | {world} | {_gib(state)} | {_gib(acts[False])} "
          f"({_gib(acts[True])}) | {_gib(state + acts[False])} ({_gib(state + acts[True])}) "
          f"| {tokens / 1e9:.1f}B | {rate:,.0f} ({rate / world:,.0f}) |")
    return 0
