"""The comparison's settings: its own options, the pretraining overrides it passes on, and the record
(`out_dir/comparison.json`) that a re-run must match."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from lit_gpt.cli import ArgumentParser
from lit_gpt.errors import UserError
from lit_gpt.eval import options
from lit_gpt.eval.prompts import TASKS
from lit_gpt.io.hyperparameters import plain
from lit_gpt.pretrain.args import PretrainArgs

RECORD = "comparison.json"
ARMS = ("meap", "ntp")
# Overrides the comparison sets per run itself.
MANAGED = {"out_dir": "--out_dir names the comparison folder", "resume": "runs always resume (--resume auto)",
           "stop_step": "each run must reach its last step", "mask_ratio": None, "seed": None, "config": None}
# Settings that may differ between invocations without changing any result (hardware, logging).
NOT_COMPARED = {"seeds", "devices", "num_nodes", "accelerator", "strategy", "fsdp_sharding", "logger", "wandb_project",
                "run_name", "peak_tflops", "eval_device", "eval_batch_size", "command", "pretrain_overrides"}
DEFAULT_DEPTHS = [0.0, 0.25, 0.5, 0.75, 1.0]


@dataclass
class ComparisonSettings:
    config: str
    out_dir: str
    seeds: int = 3
    mask_ratio: Optional[float] = None  # None: the recipe's
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    context_lengths: Optional[list[int]] = None  # None: fitted to the block size
    depths: list[float] = field(default_factory=lambda: list(DEFAULT_DEPTHS))
    samples: int = 10
    prompt_seed: int = 0
    haystack_file: Optional[str] = None
    attention_tasks: list[str] = field(default_factory=lambda: ["passkey"])
    attention_samples: int = 2
    bootstrap_resamples: int = 2000
    bootstrap_seed: int = 0
    eval_device: str = "auto"
    eval_batch_size: int = 8
    pretrain_overrides: list[str] = field(default_factory=list)


def default_context_lengths(block_size: int) -> list[int]:
    """A quarter, half and three quarters of the block size, and the block less a kv answer (64)."""
    lengths = {block_size // 4, block_size // 2, (3 * block_size) // 4, block_size - 64}
    return sorted(n for n in lengths if n >= 32)


def _task_list(text: str) -> list[str]:
    items = [t.strip() for t in text.split(",") if t.strip()]
    if text.strip().lower() == "none":
        return []
    bad = [t for t in items if t not in TASKS]
    if bad or not items:
        raise argparse.ArgumentTypeError(
            f"unknown task {bad[0] if bad else text!r}; choose from {', '.join(TASKS)} (comma-separated)")
    return items


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(
        prog="meap_vs_ntp.py",
        description="Train MEAP and NTP arms per seed with the same data order and schedule, evaluate both on the "
        "same prompts, and report MEAP - NTP with 95 % intervals (a verdict needs 3 seeds). Every other --key value is a "
        "pretraining override (see MEAP-Pretrain/pretrain.py --config RECIPE --help).",
        allow_abbrev=False,
    )
    parser.add_argument("--config", required=True, metavar="RECIPE", help="pretraining recipe, e.g. pretrained/meap_tiny.py")
    parser.add_argument("--out_dir", required=True, help="comparison folder: runs in OUT/<arm>_seed<k>/, report in OUT/")
    parser.add_argument("--seeds", type=options.positive_int, default=3, help="seeds per arm (>= 2)")
    parser.add_argument("--mask_ratio", type=float, default=None, help="the MEAP arm's mask ratio (default: the recipe's)")
    parser.add_argument("--tasks", type=_task_list, default=list(TASKS), help="retrieval tasks (comma-separated)")
    parser.add_argument("--context_lengths", type=options.comma_list(options.token_count), default=None,
                        help="prompt lengths (default: 1/4, 1/2, 3/4 of the block size and the block size - 64)")
    parser.add_argument("--depths", type=options.comma_list(options.depth), default=list(DEFAULT_DEPTHS))
    parser.add_argument("--samples", type=options.positive_int, default=10, help="prompts per length and depth")
    parser.add_argument("--prompt_seed", type=int, default=0, help="seed of the evaluation prompts (fixed across runs)")
    parser.add_argument("--haystack_file", default=None, help="niah haystack (default: the embedded corpus)")
    parser.add_argument("--attention_tasks", type=_task_list, default=["passkey"], help="tasks of the attention analysis, or none")
    parser.add_argument("--attention_samples", type=options.positive_int, default=2, help="prompts per length and depth")
    parser.add_argument("--bootstrap_resamples", type=options.positive_int, default=2000)
    parser.add_argument("--bootstrap_seed", type=int, default=0)
    parser.add_argument("--eval_device", default="auto", help="device of the evaluations: auto, cpu, cuda, ...")
    parser.add_argument("--eval_batch_size", type=options.positive_int, default=8)
    return parser


def _check_overrides(rest: Sequence[str]) -> list[str]:
    """The pretraining overrides, refusing those the comparison sets itself."""
    for item in rest:
        if item.startswith("--"):
            name = item[2:].split("=", 1)[0]
            if name in MANAGED and MANAGED[name]:
                raise UserError(f"--{name} cannot be passed to meap_vs_ntp.py: {MANAGED[name]}")
    return list(rest)


def parse_args(argv: Optional[Sequence[str]] = None) -> tuple[ComparisonSettings, PretrainArgs]:
    """-> (the comparison's settings, the MEAP arm's resolved pretraining settings)."""
    from lit_gpt.pretrain.recipe import parse_args as parse_pretrain_args

    known, rest = build_parser().parse_known_args(argv)
    settings = ComparisonSettings(**vars(known), pretrain_overrides=_check_overrides(rest))
    if settings.seeds < 2:
        raise UserError(f"--seeds {settings.seeds}: at least 2 seeds are needed for a confidence interval over seeds")
    from lit_gpt.eval.models import resolve_device

    resolve_device(settings.eval_device, "--eval_device")  # before any run starts
    if not settings.tasks:
        raise UserError("--tasks none: the comparison needs at least one retrieval task")
    pretrain_argv = ["--config", settings.config, *settings.pretrain_overrides]
    if settings.mask_ratio is not None:
        pretrain_argv += ["--mask_ratio", repr(settings.mask_ratio)]
    args = parse_pretrain_args(pretrain_argv, prog="meap_vs_ntp.py")
    if args.mask_ratio == 0:
        where = "--mask_ratio 0" if settings.mask_ratio is not None else f"recipe {settings.config} (mask_ratio = 0)"
        raise UserError(f"{where}: the MEAP arm would be NTP; use a MEAP recipe or pass --mask_ratio 0.15")
    if args.checkpoint_format == "sharded" or (args.checkpoint_format == "auto" and args.strategy == "fsdp"):
        raise UserError(f"--checkpoint_format {args.checkpoint_format}: the comparison evaluates full checkpoints "
                        "(step-XXXXXXXX.pth files); pass --checkpoint_format full")
    settings.mask_ratio = args.mask_ratio
    return settings, args


def block_size_of(args: PretrainArgs) -> int:
    from lit_gpt.config import Config

    if args.block_size is not None:
        return args.block_size
    overrides = args.model_overrides or {}
    return int(overrides.get("block_size") or Config.from_name(args.model_name).block_size)


def record_of(settings: ComparisonSettings, args: PretrainArgs, command: str) -> dict[str, Any]:
    """What out_dir/comparison.json holds: every setting that decides a result."""
    pretrain = {k: v for k, v in plain(args.flat()).items() if k not in ("out_dir", "resume", "mask_ratio")}
    return {
        "comparison": {**asdict(settings), "config": str(Path(settings.config).expanduser().resolve()), "command": command},
        "pretrain": pretrain,
    }


def _as_recorded_now(key: str, value: Any) -> Any:
    """A setting as this version records it, so that a record written before the settings moved
    matches: a mixture string of train_prefix, a tokenizer folder as given, and 'full', which is
    what 'auto' gives here (sharded checkpoints are refused)."""
    from lit_gpt.pretrain.args import DataSource, parse_data_mix

    if key == "train_prefix" and isinstance(value, str):
        return [str(DataSource(name, weight)) for name, weight in parse_data_mix(value)]
    if key == "tokenizer_dir" and isinstance(value, str):
        return str(Path(value).expanduser().resolve())
    return "auto" if key == "checkpoint_format" and value == "full" else value


def _differences(old: dict, new: dict, prefix: str = "", nested: bool = False) -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        if key in NOT_COMPARED or (nested and key not in old):  # a setting added since the record was written
            continue
        a, b = old.get(key), new.get(key)
        if nested:
            a, b = _as_recorded_now(key, a), _as_recorded_now(key, b)
        if isinstance(a, dict) and isinstance(b, dict) and key in ("comparison", "pretrain"):
            out += _differences(a, b, prefix="", nested=True)
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def check_or_write_record(out_dir: Path, record: dict) -> bool:
    """Writes out_dir/comparison.json on the first run; on a re-run, refuses other settings.
    -> True when an earlier record was found (a resumed comparison)."""
    path = out_dir / RECORD
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"--out_dir {out_dir} exists and is not a folder")
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"{path} is not readable JSON ({err}): choose another --out_dir") from None
        if not isinstance(old, dict) or not all(isinstance(old.get(key), dict) for key in record):
            raise UserError(f"{path} is not a comparison record (it lacks the {' and '.join(map(repr, record))} "
                            "settings): choose another --out_dir")
        changed = _differences(old, record)
        if changed:
            shown = "; ".join(changed[:4]) + (f"; and {len(changed) - 4} more" if len(changed) > 4 else "")
            raise UserError(f"{path} records a comparison of other settings ({shown}): choose another --out_dir")
        return True
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise UserError(f"--out_dir {out_dir} is not empty and holds no {RECORD}: choose a new or empty folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    options.write_json(path, record)
    return False
