"""What a run reports: metrics.csv (always), tensorboard or wandb (when asked), throughput and MFU,
and a progress bar on an interactive terminal (plain lines otherwise)."""

from __future__ import annotations

import csv
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from lit_gpt.errors import UserError
from lit_gpt.io.atomic import open_atomic

COLUMNS = ("step", "tokens", "loss", "lr", "grad_norm", "tokens_per_sec", "mfu", "val_loss", "val_ppl", "elapsed_s",
           "mask_fraction")

# Dense bf16 tensor-core peak of one device, TFLOP/s (vendor data sheets). Matched by substring of
# torch.cuda.get_device_name(), first match wins, so the more specific names come first.
PEAK_BF16_TFLOPS = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),
    ("H800", 989.0),
    ("H20", 148.0),
    ("B200", 2250.0),
    ("A100", 312.0),
    ("A800", 312.0),
    ("L40S", 362.0),
    ("L40", 181.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
    ("A6000", 155.0),
)


def peak_tflops(device_name: str, precision: str, override: Optional[float] = None) -> Optional[float]:
    """Peak TFLOP/s for MFU: the override, else the bf16 table for 16-bit precisions, else None."""
    if override is not None:
        return override
    if not any(tag in precision for tag in ("bf16", "16-")):
        return None
    return next((tflops for tag, tflops in PEAK_BF16_TFLOPS if tag in device_name), None)


def check_logger_available(logger: str) -> None:
    import importlib.util

    if logger != "csv" and importlib.util.find_spec(logger) is None:  # the loggers are named after their packages
        raise UserError(f"--logger {logger} needs the {logger} package: pip install {logger}")


class MetricsLog:
    """metrics.csv in out_dir plus the optional logger, on rank 0. A fresh run moves an existing metrics.csv aside
    (metrics.N.csv); a resumed run keeps its rows up to the checkpoint's step, so it reads as one run."""

    def __init__(self, out_dir: Path, logger: str = "csv", resume_step: Optional[int] = None,
                 run_name: Optional[str] = None, config: Optional[dict] = None, project: str = "meap"):
        self.path = Path(out_dir) / "metrics.csv"  # out_dir was created by plan_run
        rows: list[dict[str, str]] = []
        if self.path.exists():
            if resume_step is None:
                n = 1
                while (aside := self.path.with_name(f"metrics.{n}.csv")).exists():
                    n += 1
                os.replace(self.path, aside)
            else:
                with open(self.path, newline="") as f:
                    rows = [r for r in csv.DictReader(f) if r.get("step", "").isdigit() and int(r["step"]) <= resume_step]
        with open_atomic(self.path, "w", "--out_dir", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=COLUMNS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(rows)
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, fieldnames=COLUMNS, extrasaction="ignore")
        self._external = None
        self._kind = logger
        if logger == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._external = SummaryWriter(log_dir=str(Path(out_dir) / "tensorboard"))
        elif logger == "wandb":
            import wandb

            id_file = Path(out_dir) / "wandb_run_id.txt"
            run_id = id_file.read_text().strip() if id_file.exists() else wandb.util.generate_id()
            id_file.write_text(run_id)
            # config: the settings tree (PretrainArgs.to_dict()), recorded with the run
            self._external = wandb.init(
                project=project,
                name=run_name, id=run_id, resume="allow", config=config, dir=str(out_dir),
            )

    def log(self, row: dict[str, Any]) -> None:
        self._writer.writerow(row)  # csv writes floats with repr (exact: resumed runs are compared bit for bit)
        self._file.flush()
        step = int(row["step"])
        values = {k: v for k, v in row.items() if k != "step" and isinstance(v, (int, float))}
        if self._kind == "tensorboard":
            for key, value in values.items():
                self._external.add_scalar(key, value, step)
        elif self._kind == "wandb":
            self._external.log(values, step=step)

    def close(self) -> None:
        self._file.close()
        if self._kind == "tensorboard":
            self._external.close()
        elif self._kind == "wandb":
            self._external.finish()


@dataclass
class Throughput:
    """Tokens/s and MFU between two log points (wall clock, so data time counts too); `reset` starts it."""

    flops_per_token: float
    world_size: int
    peak: Optional[float]

    def reset(self, step: int, tokens: int) -> None:
        self._t, self._step, self._tokens = time.perf_counter(), step, tokens

    def update(self, step: int, tokens: int) -> tuple[float, Optional[float], float]:
        """-> (tokens/s over all processes, MFU or None, seconds per step) since the last update."""
        now = time.perf_counter()
        dt = max(now - self._t, 1e-9)
        tokens_per_sec = (tokens - self._tokens) / dt
        sec_per_step = dt / max(step - self._step, 1)
        mfu = tokens_per_sec * self.flops_per_token / (self.peak * 1e12 * self.world_size) if self.peak else None
        self._t, self._step, self._tokens = now, step, tokens
        return tokens_per_sec, mfu, sec_per_step


def format_duration(seconds: float) -> str:
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


def format_train_line(row: dict[str, Any], total_steps: int, eta_s: float) -> str:
    parts = [
        f"step {row['step']}/{total_steps}",
        f"loss {row['loss']:.4f}",
        f"lr {row['lr']:.2e}",
    ]
    if row.get("grad_norm") is not None:
        parts.append(f"grad_norm {row['grad_norm']:.3f}")
    parts.append(f"{row['tokens_per_sec'] / 1000:.1f}k tok/s")
    if row.get("mfu") is not None:
        parts.append(f"MFU {row['mfu']:.1%}")
    parts.append(f"ETA {format_duration(eta_s)}")
    return " | ".join(parts)


class Progress:
    """A tqdm bar with ETA on an interactive terminal (rank 0); plain printed lines otherwise."""

    def __init__(self, total: int, initial: int, enabled: bool):
        from tqdm import tqdm

        self.enabled = enabled
        self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True,
                        disable=not (enabled and sys.stderr.isatty()))

    def report(self, line: str, postfix: Optional[dict] = None) -> None:
        if self.bar.disable:
            if self.enabled:
                print(line, flush=True)
        elif postfix:
            self.bar.set_postfix(postfix, refresh=False)
        else:
            self.bar.write(line)


def format_count(n: float) -> str:
    """12 -> '12', 40960 -> '41.0k', 1.2e9 -> '1.20B': a count in a unit that shows its size."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            value = n / size
            return f"{value:.2f}{unit}" if value < 10 else f"{value:.1f}{unit}"
    return f"{n:.0f}"
