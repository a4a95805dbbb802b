"""Every setting of a pretraining run: one dataclass per component; a field's type is how it is parsed,
the docstring under it its `--help`, `setting(...)` its range. Names are unique across the slices, so
the command line and recipes use the flat name (`--mask_ratio`; `--meap.mask_ratio` works too)."""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any, Literal, Mapping, Optional, Union

from lit_gpt.cli import check_fields, field_hints, setting, unknown_setting
from lit_gpt.errors import UserError

# Past these a run cannot fit any accelerator (activations of a micro batch) or host (one step's
# token positions); refused before anything is allocated rather than ending in a memory error.
MAX_MICRO_BATCH_TOKENS = 2**24
MAX_STEP_TOKENS = 2**28
MAX_SEED = 2**63 - 1  # mask seeds pack it as a signed 64-bit integer


class _Slice:
    """A slice of the settings: its fields are checked against their types and ranges when it is built."""

    def __post_init__(self):
        check_fields(self)


@dataclass
class DataSource:
    """One prefix of a data mixture."""

    prefix: str
    """file prefix of the chunks (`{prefix}*.bin`)"""
    weight: float = 1.0
    """share of the sequences drawn from this prefix (weights are normalised to sum 1)"""


@dataclass
class ModelSettings(_Slice):
    """model"""

    model_name: str = "tiny_LLaMA_1b_mask"
    """model shape from lit_gpt/config.py"""
    model_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    """Config fields that replace the named shape's, e.g. '{"n_layer": 2}' (a recipe's are merged with its base's)"""
    vocab_from_tokenizer: bool = False
    """size the vocabulary to the tokenizer (with [MASK]) padded to padding_multiple, instead of the shape's"""
    block_size: Optional[int] = setting(None, ge=1)
    """training sequence length T (the loader reads T+1 tokens); default: the shape's block_size"""
    fused_kernels: bool = True
    """use Liger-Kernel's fused kernels on CUDA when installed"""
    activation_checkpointing: bool = False
    """recompute each Block in backward (less memory, ~30% slower)"""
    compile: bool = False
    """torch.compile each Block (lit_gpt/compile.py): faster on GPU after a warm-up of a minute or so"""


@dataclass
class DataSettings(_Slice):
    """data"""

    train_data_dir: str = setting("data/c4_bin", path=True)
    """folder with the packed training chunks"""
    train_prefix: Union[str, list[DataSource]] = "c4"
    """prefix of the training chunks, or a mixture: a list of {prefix, weight} or the string 'c4:0.7,wiki:0.3' (each sequence is drawn from one prefix, deterministically from the seed and its position)"""
    val_data_dir: Optional[str] = setting(None, path=True)
    """folder with the validation chunks; default: train_data_dir (validation is skipped if it has none)"""
    val_prefix: str = "validation"
    """file prefix of the validation chunks"""
    tokenizer_dir: str = setting("tokenizer", path=True)
    """folder with tokenizer.json or tokenizer.model (the one the data was prepared with)"""

    def __post_init__(self):
        super().__post_init__()
        self.train_prefix = [DataSource(name, weight) for name, weight in parse_data_mix(self.train_prefix)]


@dataclass
class MeapSettings(_Slice):
    """MEAP masking"""

    mask_ratio: float = setting(0.15, ge=0, lt=1)
    """fraction of input positions replaced by [MASK]; 0 = plain NTP"""
    mask_span: int = setting(1, ge=1)
    """length of each masked run (1 = single tokens; the paper's ablation uses 5 and 50)"""
    mask_scheme: Literal["per_sequence", "upstream"] = "per_sequence"
    """per_sequence: floor(mask_ratio*T) positions per sequence among all T inputs, from a generator seeded by (seed, step, micro batch), so every sequence, step and process differs and a resume repeats them. upstream: the upstream code exactly: one set of max(1, int(T*mask_ratio)) positions among the first T-1 per optimizer step, shared by every sequence, micro batch and process, from Python's random seeded 50 + step % 51 (--seed does not change them; single tokens only). In both, BOS/EOS are masked like any other token"""
    mask_shared_across_batch: Optional[bool] = None
    """removed: it shared masks only within a micro batch; use --mask_scheme upstream"""

    def __post_init__(self):
        super().__post_init__()
        if self.mask_scheme == "upstream" and self.mask_span != 1:
            raise UserError(f"--mask_span {self.mask_span}: the upstream mask scheme masks single tokens: "
                            "use --mask_scheme per_sequence for spans")
        if self.mask_shared_across_batch is not None:
            raise UserError("--mask_shared_across_batch was removed (it shared masks only within a micro batch): "
                            "use --mask_scheme upstream for the upstream code's masks")


@dataclass
class ParallelSettings(_Slice):
    """hardware and parallelism"""

    devices: int = -1
    """processes (GPUs) per node; -1 = every visible GPU (1 on CPU)"""
    num_nodes: int = setting(1, ge=1)
    """number of nodes"""
    accelerator: Literal["auto", "cuda", "gpu", "cpu"] = "auto"
    """auto, cuda or cpu"""
    strategy: Literal["auto", "fsdp", "ddp"] = "auto"
    """auto (FSDP over Block with several GPUs, DDP with several CPU processes), fsdp (FSDP2 fully_shard per Block, on GPUs or CPU processes; with one process it runs unsharded FSDP2) or ddp"""
    fsdp_sharding: Literal["FULL_SHARD", "HYBRID_SHARD", "SHARD_GRAD_OP", "NO_SHARD"] = "FULL_SHARD"
    """FULL_SHARD (free each block's parameters after its forward), SHARD_GRAD_OP (keep them until the backward), HYBRID_SHARD (shard within a node, replicate across nodes); NO_SHARD is refused under FSDP2 (use --strategy ddp)"""
    precision: Optional[Literal["bf16-mixed", "bf16-true", "16-mixed", "32-true"]] = None
    """default: bf16-mixed on GPU, 32-true on CPU"""

    def __post_init__(self):
        super().__post_init__()
        if self.devices < 1 and self.devices != -1:
            raise UserError(f"--devices {self.devices}: must be >= 1, or -1 for every visible GPU")


@dataclass
class BudgetSettings(_Slice):
    """batch and budget"""

    micro_batch_size: int = setting(8, ge=1)
    """sequences per forward/backward on one device"""
    global_batch_size: int = setting(256, ge=1)
    """sequences per optimizer step, over all devices"""
    max_steps: Optional[int] = setting(None, ge=1)
    """optimizer steps of the whole run (sets the LR schedule)"""
    max_tokens: Optional[int] = setting(None, ge=1)
    """training tokens of the whole run; with max_steps too, the smaller budget applies"""
    stop_step: Optional[int] = setting(None, ge=1)
    """end this invocation after this step with a checkpoint, without changing the LR schedule"""
    dry_run: bool = False
    """print the memory and time plan of these settings (bytes per rank, activations, token budget, tokens/s needed) and exit; nothing is launched or written, and --devices/--num_nodes may name GPUs this machine lacks"""
    plan_days: float = setting(7.0, gt=0)
    """days the run should take: --dry_run prints the tokens/s that needs"""

    def __post_init__(self):
        super().__post_init__()
        if self.max_steps is None and self.max_tokens is None:
            raise UserError("set a budget: --max_steps or --max_tokens")


@dataclass
class OptimizerSettings(_Slice):
    """optimizer and schedule"""

    learning_rate: float = setting(4e-4, gt=0)
    """peak learning rate"""
    min_lr: float = setting(4e-5, ge=0)
    """learning rate at the end of the cosine decay"""
    warmup_fraction: float = setting(0.1, ge=0, lt=1)
    """fraction of the steps with linear warmup"""
    warmup_steps: Optional[int] = setting(None, ge=0)
    """warmup steps; overrides warmup_fraction"""
    weight_decay: float = setting(0.05, ge=0)
    """AdamW weight decay"""
    beta1: float = setting(0.9, ge=0, lt=1)
    """AdamW beta1"""
    beta2: float = setting(0.95, ge=0, lt=1)
    """AdamW beta2"""
    grad_clip: float = setting(1.0, ge=0)
    """clip the gradient norm to this value (0 = no clipping)"""
    seed: int = setting(3407, ge=0, le=MAX_SEED)
    """seed of the model init, the data order and the masks"""

    def __post_init__(self):
        super().__post_init__()
        if self.min_lr > self.learning_rate:
            raise UserError(f"--min_lr {self.min_lr}: must be in [0, learning_rate={self.learning_rate}]")


@dataclass
class CheckpointSettings(_Slice):
    """output and checkpoints"""

    out_dir: str = setting("out/meap_1b_mask0.15", path=True)
    """where checkpoints, metrics.csv and hyperparameters.yaml are written"""
    save_interval: int = setting(1000, ge=1)
    """save a checkpoint every this many steps (and at the end)"""
    keep_last: int = setting(3, ge=0)
    """keep this many newest checkpoints (0 = keep all)"""
    checkpoint_format: Literal["auto", "full", "sharded"] = "auto"
    """full: one step-XXXXXXXX.pth file; sharded: a torch.distributed.checkpoint folder, one shard file per process (FSDP only); auto: sharded under FSDP, else full; either resumes with any number of processes and exports with convert_lit_checkpoint"""
    async_checkpoint: Optional[bool] = None
    """write sharded checkpoints in the background while training goes on (default: on with sharded checkpoints); a checkpoint counts as saved once complete"""
    init_from: Optional[str] = setting(None, path=True)
    """start from the weights of this lit checkpoint (e.g. TinyLlama imported with convert/convert_hf_checkpoint.py); optimizer, step and data position start fresh; ignored when resuming"""
    resume: Optional[str] = None
    """auto = the newest checkpoint in out_dir (a fresh start if none), or a checkpoint path"""

    def __post_init__(self):
        super().__post_init__()
        if self.resume is not None and self.resume != "auto":
            self.resume = os.path.abspath(os.path.expanduser(self.resume))


@dataclass
class LoggingSettings(_Slice):
    """logging and validation"""

    log_interval: int = setting(10, ge=1)
    """log (and sync with the device) every this many steps"""
    eval_interval: int = setting(1000, ge=1)
    """validate every this many steps (and at the end)"""
    eval_iters: int = setting(100, ge=0)
    """validation micro batches, split over the processes (0 = no validation)"""
    logger: Literal["csv", "tensorboard", "wandb"] = "csv"
    """csv (metrics.csv only), tensorboard or wandb (in addition to metrics.csv)"""
    wandb_project: str = "meap"
    """wandb project name (logger wandb)"""
    run_name: Optional[str] = None
    """name of the run in tensorboard/wandb; default: out_dir's name"""
    peak_tflops: Optional[float] = setting(None, gt=0)
    """peak TFLOP/s of one device for MFU; default: looked up from the GPU name (bf16)"""


SLICES = {"model": ModelSettings, "data": DataSettings, "meap": MeapSettings, "parallel": ParallelSettings,
          "budget": BudgetSettings, "optimizer": OptimizerSettings, "checkpoint": CheckpointSettings,
          "logging": LoggingSettings}
HINTS = field_hints(*SLICES.values())  # every flat setting name -> its type (names are unique)
SETTINGS = {name: slice_name for slice_name, cls in SLICES.items() for name in field_hints(cls)}


@dataclass(init=False)
class PretrainArgs:
    """The settings tree. Built from flat names, slices, or both (`PretrainArgs(mask_ratio=0.1)`,
    `PretrainArgs(meap={...})`), and checked as it is built."""

    model: ModelSettings
    data: DataSettings
    meap: MeapSettings
    parallel: ParallelSettings
    budget: BudgetSettings
    optimizer: OptimizerSettings
    checkpoint: CheckpointSettings
    logging: LoggingSettings

    def __init__(self, **values: Any):
        grouped: dict[str, dict[str, Any]] = {name: {} for name in SLICES}
        for key, value in flatten(values, "settings").items():
            if key not in SETTINGS:
                raise unknown_setting(key, SETTINGS, "settings")
            grouped[SETTINGS[key]][key] = value
        for name, cls in SLICES.items():
            setattr(self, name, cls(**grouped[name]))
        self._check_batch_size()

    def __getattr__(self, name: str) -> Any:
        # `args.mask_ratio` reads `args.meap.mask_ratio`: flat names are unique, so one table serves.
        slice_name = SETTINGS.get(name)
        if slice_name is None:
            raise AttributeError(name)
        return getattr(object.__getattribute__(self, slice_name), name)

    def _check_batch_size(self) -> None:
        from lit_gpt.config import Config

        T = self.block_size or self.model_overrides.get("block_size")
        if T is None:
            try:
                T = Config.from_name(self.model_name).block_size
            except (TypeError, ValueError):
                return  # an unknown shape is reported with its own message when the model is built
        if self.micro_batch_size * T > MAX_MICRO_BATCH_TOKENS:
            raise UserError(f"--micro_batch_size {self.micro_batch_size}: {self.micro_batch_size} x {T} tokens per "
                            f"micro batch cannot fit in memory (at most {MAX_MICRO_BATCH_TOKENS:,} tokens)")
        if self.global_batch_size * T > MAX_STEP_TOKENS:
            raise UserError(f"--global_batch_size {self.global_batch_size}: {self.global_batch_size} x {T} tokens "
                            f"per optimizer step is beyond any run (at most {MAX_STEP_TOKENS:,} tokens)")
        # The processes asked for (-1, every visible GPU, is at least one: what one cannot split, more cannot).
        check_batch_layout(self, self.devices * self.num_nodes if self.devices > 0 else 1)

    def flat(self) -> dict[str, Any]:
        """{setting: value} over every slice."""
        return {name: getattr(getattr(self, slice_name), name) for name, slice_name in SETTINGS.items()}

    def replace(self, **changes: Any) -> "PretrainArgs":
        return PretrainArgs(**{**self.flat(), **changes})

    def to_dict(self) -> dict[str, Any]:
        """The tree as plain data (what hyperparameters.yaml and --print_config hold)."""
        return dataclasses.asdict(self)


def flatten(values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Flat settings from flat names and/or slices (`meap={"mask_ratio": 0.1}`, as hyperparameters.yaml holds)."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        if key not in SLICES:
            flat[key] = value
            continue
        items = dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value
        if not isinstance(items, Mapping):
            raise UserError(f"{where} {key}: expected a mapping of its settings, got {value!r}")
        for name, item in items.items():
            if SETTINGS.get(name) != key:
                raise unknown_setting(name, field_hints(SLICES[key]), f"{where} ({key})")
            flat[name] = item
    return flat


def parse_data_mix(value: Any, setting_name: str = "train_prefix") -> list[tuple[str, float]]:
    """`c4` -> [("c4", 1.0)]; `c4:0.7,wiki:0.3` or [{prefix: c4, weight: 0.7}, ...] -> [("c4", 0.7), ...],
    weights normalised to sum 1."""

    def bad(why: str) -> UserError:
        return UserError(f"--{setting_name} {value!r}: {why}")

    example = "a prefix (c4), prefixes with weights (c4:0.7,wiki:0.3) or a list of {prefix, weight}"
    if isinstance(value, str):
        if not value.strip():
            raise bad(f"expected {example}")
        entries = [entry.strip() for entry in value.split(",")]
        if len(entries) == 1 and ":" not in entries[0]:
            return [(entries[0], 1.0)]
        items = []
        for entry in entries:
            prefix, colon, weight = entry.rpartition(":")
            if not colon or not prefix.strip():
                raise bad(f"entry {entry!r} is not prefix:weight; expected {example}")
            try:
                items.append((prefix.strip(), float(weight)))
            except ValueError:
                raise bad(f"weight {weight.strip()!r} of {prefix.strip()!r} is not a number") from None
    elif isinstance(value, (list, tuple)) and value:
        items = []
        for entry in value:
            entry = dataclasses.asdict(entry) if isinstance(entry, DataSource) else entry
            if not isinstance(entry, Mapping) or set(entry) - {"prefix", "weight"} or "prefix" not in entry:
                raise bad(f"entry {entry!r} is not {{prefix, weight}}; expected {example}")
            prefix, weight = entry["prefix"], entry.get("weight", 1.0)
            if not isinstance(prefix, str) or not prefix.strip():
                raise bad(f"entry {entry!r}: the prefix must be a non-empty string")
            if isinstance(weight, bool) or not isinstance(weight, (int, float)):
                raise bad(f"weight {weight!r} of {prefix!r} is not a number")
            items.append((prefix, float(weight)))
    else:
        raise bad(f"expected {example}")
    seen = set()
    for prefix, weight in items:
        if not math.isfinite(weight) or weight < 0:
            raise bad(f"weight {weight!r} of {prefix!r} must be a non-negative number")
        if prefix in seen:
            raise bad(f"prefix {prefix!r} appears twice")
        seen.add(prefix)
    total = sum(w for _, w in items)
    if total <= 0:
        raise bad("the weights sum to 0")
    return [(prefix, w / total) for prefix, w in items]


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


def total_steps(args: PretrainArgs, block_size: int) -> int:
    """The run's optimizer steps: the first budget reached (the settings hold at least one)."""
    token_steps = math.ceil(args.max_tokens / (args.global_batch_size * block_size)) if args.max_tokens else None
    return min(b for b in (args.max_steps, token_steps) if b)
