"""Every setting of a pretraining run, with its meaning and default.

A recipe in `pretrained/` sets some of these fields; the command line overrides any of them with
`--name value`. Settings are validated here, before anything is built, so that bad input fails
with one line naming the setting.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Optional

from lit_gpt.errors import UserError
from lit_gpt.meap import MASK_SCHEMES

LOGGERS = ("csv", "tensorboard", "wandb")
STRATEGIES = ("auto", "fsdp", "ddp")
PRECISIONS = ("bf16-mixed", "bf16-true", "16-mixed", "32-true")
FSDP_SHARDING = ("FULL_SHARD", "HYBRID_SHARD", "SHARD_GRAD_OP", "NO_SHARD")
CHECKPOINT_FORMATS = ("auto", "full", "sharded")


def _setting(default: Any, help: str, group: str):
    if isinstance(default, (dict, list)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, "group": group})
    return field(default=default, metadata={"help": help, "group": group})


@dataclass
class PretrainArgs:
    # --- model
    model_name: str = _setting("tiny_LLaMA_1b_mask", "model shape from lit_gpt/config.py", "model")
    model_overrides: dict = _setting(
        {}, "Config fields that replace the named shape's, as JSON, e.g. '{\"n_layer\": 2}'", "model"
    )
    vocab_from_tokenizer: bool = _setting(
        False,
        "size the vocabulary to the tokenizer (with [MASK]) padded to padding_multiple, instead of the shape's",
        "model",
    )
    block_size: Optional[int] = _setting(
        None, "training sequence length T (the loader reads T+1 tokens); default: the shape's block_size", "model"
    )
    fused_kernels: bool = _setting(True, "use Liger-Kernel's fused kernels on CUDA when installed", "model")
    activation_checkpointing: bool = _setting(
        False, "recompute each Block in backward (less memory, ~30% slower)", "model"
    )
    compile: bool = _setting(
        False, "torch.compile each Block (lit_gpt/compile.py): faster on GPU after a warm-up of a minute or so", "model"
    )
    # --- data
    train_data_dir: str = _setting("data/c4_bin", "folder with the packed training chunks", "data")
    train_prefix: str = _setting(
        "c4",
        "file prefix of the training chunks in train_data_dir, or a mix of prefixes with weights "
        "'c4:0.7,wiki:0.3' (normalised to sum 1; each sequence is drawn from one prefix, deterministically "
        "from the seed and its position)",
        "data",
    )
    val_data_dir: Optional[str] = _setting(
        None, "folder with the validation chunks; default: train_data_dir (validation is skipped if it has none)", "data"
    )
    val_prefix: str = _setting("validation", "file prefix of the validation chunks", "data")
    tokenizer_dir: str = _setting(
        "tokenizer", "folder with tokenizer.json or tokenizer.model (the one the data was prepared with)", "data"
    )
    # --- MEAP
    mask_ratio: float = _setting(0.15, "fraction of input positions replaced by [MASK], in [0, 1); 0 = plain NTP", "meap")
    mask_span: int = _setting(1, "length of each masked run (1 = single tokens; the paper's ablation uses 5 and 50)", "meap")
    mask_scheme: str = _setting(
        "per_sequence",
        "how mask positions are drawn. per_sequence: floor(mask_ratio*T) positions per sequence among all T "
        "inputs (the last one included), from a generator seeded by (seed, step, micro batch), so every sequence, "
        "step and process differs and a resume repeats them. upstream: the upstream code exactly: one set of "
        "max(1, int(T*mask_ratio)) positions among the first T-1 (the last input is never masked) per optimizer "
        "step, shared by every sequence, micro batch and process, from Python's random seeded 50 + step % 51 "
        "(51 patterns per run; --seed does not change them; single tokens only). In both, BOS/EOS tokens are "
        "masked like any other token",
        "meap",
    )
    mask_shared_across_batch: Optional[bool] = _setting(
        None, "removed: it shared masks only within a micro batch; use --mask_scheme upstream", "meap"
    )
    # --- hardware
    devices: int = _setting(-1, "processes (GPUs) per node; -1 = every visible GPU (1 on CPU)", "hardware")
    num_nodes: int = _setting(1, "number of nodes", "hardware")
    accelerator: str = _setting("auto", "auto, cuda or cpu", "hardware")
    strategy: str = _setting(
        "auto",
        "auto (FSDP over Block with several GPUs, DDP with several CPU processes), fsdp (FSDP2 fully_shard per "
        "Block, on GPUs or CPU processes; with one process it runs unsharded FSDP2) or ddp",
        "hardware",
    )
    fsdp_sharding: str = _setting(
        "FULL_SHARD",
        "FULL_SHARD (free each block's parameters after its forward), SHARD_GRAD_OP (keep them until the "
        "backward), HYBRID_SHARD (shard within a node, replicate across nodes; FULL_SHARD on one node); "
        "NO_SHARD is refused under FSDP2 (use --strategy ddp)",
        "hardware",
    )
    precision: Optional[str] = _setting(
        None, f"{', '.join(PRECISIONS)}; default: bf16-mixed on GPU, 32-true on CPU", "hardware"
    )
    # --- batch and budget
    micro_batch_size: int = _setting(8, "sequences per forward/backward on one device", "budget")
    global_batch_size: int = _setting(256, "sequences per optimizer step, over all devices", "budget")
    max_steps: Optional[int] = _setting(None, "optimizer steps of the whole run (sets the LR schedule)", "budget")
    max_tokens: Optional[int] = _setting(
        None, "training tokens of the whole run; with max_steps too, the smaller budget applies", "budget"
    )
    stop_step: Optional[int] = _setting(
        None, "end this invocation after this step with a checkpoint, without changing the LR schedule", "budget"
    )
    # --- optimizer
    learning_rate: float = _setting(4e-4, "peak learning rate", "optimizer")
    min_lr: float = _setting(4e-5, "learning rate at the end of the cosine decay", "optimizer")
    warmup_fraction: float = _setting(0.1, "fraction of the steps with linear warmup", "optimizer")
    warmup_steps: Optional[int] = _setting(None, "warmup steps; overrides warmup_fraction", "optimizer")
    weight_decay: float = _setting(0.05, "AdamW weight decay", "optimizer")
    beta1: float = _setting(0.9, "AdamW beta1", "optimizer")
    beta2: float = _setting(0.95, "AdamW beta2", "optimizer")
    grad_clip: float = _setting(1.0, "clip the gradient norm to this value (0 = no clipping)", "optimizer")
    seed: int = _setting(3407, "seed of the model init, the data order and the masks", "optimizer")
    # --- output, logging, evaluation
    out_dir: str = _setting("out/meap_1b_mask0.15", "where checkpoints and metrics.csv are written", "output")
    log_interval: int = _setting(10, "log (and sync with the device) every this many steps", "output")
    eval_interval: int = _setting(1000, "validate every this many steps (and at the end)", "output")
    eval_iters: int = _setting(100, "validation micro batches, split over the processes (0 = no validation)", "output")
    save_interval: int = _setting(1000, "save a checkpoint every this many steps (and at the end)", "output")
    keep_last: int = _setting(3, "keep this many newest checkpoints (0 = keep all)", "output")
    checkpoint_format: str = _setting(
        "auto",
        "full: one step-XXXXXXXX.pth file; sharded: a torch.distributed.checkpoint folder, one shard file per "
        "process (FSDP only); auto: sharded under FSDP, else full; either resumes with any number of processes "
        "and exports with convert_lit_checkpoint",
        "output",
    )
    async_checkpoint: Optional[bool] = _setting(
        None,
        "write sharded checkpoints in the background while training goes on (default: on with sharded "
        "checkpoints); a checkpoint counts as saved once complete",
        "output",
    )
    init_from: Optional[str] = _setting(
        None,
        "start from the weights of this lit checkpoint (e.g. TinyLlama imported with convert/convert_hf_checkpoint.py); "
        "optimizer, step and data position start fresh; ignored when resuming",
        "output",
    )
    resume: Optional[str] = _setting(
        None, "auto = the newest checkpoint in out_dir (a fresh start if none), or a checkpoint path", "output"
    )
    logger: str = _setting("csv", "csv (metrics.csv only), tensorboard or wandb (in addition to metrics.csv)", "output")
    wandb_project: str = _setting("meap", "wandb project name (logger wandb)", "output")
    run_name: Optional[str] = _setting(None, "name of the run in tensorboard/wandb; default: out_dir's name", "output")
    peak_tflops: Optional[float] = _setting(
        None, "peak TFLOP/s of one device for MFU; default: looked up from the GPU name (bf16)", "output"
    )

    def replace(self, **changes: Any) -> "PretrainArgs":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


SETTINGS = {f.name: f for f in dataclasses.fields(PretrainArgs)}


def validate_args(args: PretrainArgs) -> None:
    """Checks that need no file and no device. Raises UserError naming the setting."""

    def bad(name: str, why: str) -> UserError:
        return UserError(f"--{name} {getattr(args, name)!r}: {why}")

    if not (isinstance(args.mask_ratio, (int, float)) and 0.0 <= args.mask_ratio < 1.0):
        raise bad("mask_ratio", "must be in [0, 1)")
    if args.mask_span < 1:
        raise bad("mask_span", "must be >= 1")
    if args.mask_scheme not in MASK_SCHEMES:
        raise bad("mask_scheme", f"must be one of {', '.join(MASK_SCHEMES)}")
    if args.mask_scheme == "upstream" and args.mask_span != 1:
        raise bad("mask_span", "the upstream mask scheme masks single tokens: use --mask_scheme per_sequence for spans")
    if args.mask_shared_across_batch is not None:
        raise UserError(
            "--mask_shared_across_batch was removed (it shared masks only within a micro batch): "
            "use --mask_scheme upstream for the upstream code's masks"
        )
    for name in ("micro_batch_size", "global_batch_size", "log_interval", "eval_interval", "save_interval", "num_nodes"):
        if getattr(args, name) < 1:
            raise bad(name, "must be >= 1")
    for name in ("eval_iters", "keep_last"):
        if getattr(args, name) < 0:
            raise bad(name, "must be >= 0")
    if args.devices == 0 or args.devices < -1:
        raise bad("devices", "must be >= 1, or -1 for every visible GPU")
    for name in ("max_steps", "max_tokens", "stop_step", "block_size", "warmup_steps"):
        value = getattr(args, name)
        if value is not None and value < (0 if name == "warmup_steps" else 1):
            raise bad(name, "must be positive")
    if args.max_steps is None and args.max_tokens is None:
        raise UserError("set a budget: --max_steps or --max_tokens")
    if not args.learning_rate > 0:
        raise bad("learning_rate", "must be > 0")
    if not 0 <= args.min_lr <= args.learning_rate:
        raise bad("min_lr", f"must be in [0, learning_rate={args.learning_rate}]")
    if not 0 <= args.warmup_fraction < 1:
        raise bad("warmup_fraction", "must be in [0, 1)")
    if args.weight_decay < 0 or args.grad_clip < 0:
        raise bad("weight_decay" if args.weight_decay < 0 else "grad_clip", "must be >= 0")
    for name in ("beta1", "beta2"):
        if not 0 <= getattr(args, name) < 1:
            raise bad(name, "must be in [0, 1)")
    choices = {
        "logger": LOGGERS,
        "strategy": STRATEGIES,
        "fsdp_sharding": FSDP_SHARDING,
        "checkpoint_format": CHECKPOINT_FORMATS,
        "accelerator": ("auto", "cuda", "gpu", "cpu"),
    }
    for name, allowed in choices.items():
        if getattr(args, name) not in allowed:
            raise bad(name, f"must be one of {', '.join(allowed)}")
    if args.precision is not None and args.precision not in PRECISIONS:
        raise bad("precision", f"must be one of {', '.join(PRECISIONS)}")
    if args.peak_tflops is not None and not args.peak_tflops > 0:
        raise bad("peak_tflops", "must be > 0")
    if not isinstance(args.model_overrides, dict):
        raise bad("model_overrides", "must be a dict of Config fields")
    parse_data_mix(args.train_prefix)


def parse_data_mix(text: str, setting: str = "train_prefix") -> list[tuple[str, float]]:
    """`c4` -> [("c4", 1.0)]; `c4:0.7,wiki:0.3` -> [("c4", 0.7), ("wiki", 0.3)], weights normalised.

    One string for the command line and recipes alike, so a recipe's mix replaces its base's
    whole (a dict would be merged key by key).
    """

    def bad(why: str) -> UserError:
        return UserError(f"--{setting} {text!r}: {why}")

    example = "a prefix (c4) or prefixes with weights (c4:0.7,wiki:0.3)"
    if not isinstance(text, str) or not text.strip():
        raise bad(f"expected {example}")
    entries = [entry.strip() for entry in text.split(",")]
    if len(entries) == 1 and ":" not in entries[0]:
        return [(entries[0], 1.0)]
    mix: list[tuple[str, float]] = []
    for entry in entries:
        prefix, colon, weight = entry.rpartition(":")
        prefix = prefix.strip()
        if not colon or not prefix:
            raise bad(f"entry {entry!r} is not prefix:weight; expected {example}")
        try:
            value = float(weight)
        except ValueError:
            raise bad(f"weight {weight.strip()!r} of {prefix!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise bad(f"weight {weight.strip()!r} of {prefix!r} must be a non-negative number")
        if prefix in (p for p, _ in mix):
            raise bad(f"prefix {prefix!r} appears twice")
        mix.append((prefix, value))
    total = sum(w for _, w in mix)
    if total <= 0:
        raise bad("the weights sum to 0")
    return [(prefix, w / total) for prefix, w in mix]


def check_batch_layout(args: PretrainArgs, world_size: int) -> int:
    """-> gradient accumulation steps; the global batch must split evenly over devices and micro batches."""
    if args.global_batch_size % world_size:
        raise UserError(
            f"--global_batch_size {args.global_batch_size} does not split over {world_size} processes"
        )
    per_device = args.global_batch_size // world_size
    if per_device % args.micro_batch_size:
        raise UserError(
            f"--micro_batch_size {args.micro_batch_size} does not divide the per-device batch of {per_device} "
            f"sequences (global_batch_size {args.global_batch_size} / {world_size} processes)"
        )
    return per_device // args.micro_batch_size
