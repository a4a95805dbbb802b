"""Training and validation loss curves of finished runs, read from their metrics.csv (scripts/plot_runs.py,
the MEAP-vs-NTP report)."""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

from lit_gpt.errors import UserError
from lit_gpt.eval.plots import format_tokens, new_figure, save_figure


@dataclass
class RunCurves:
    """One run's training loss and validation loss, against tokens (or steps when tokens are absent)."""

    name: str
    x_label: str
    train_x: list[float] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_x: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)


def _number(value: Optional[str]) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):  # None or an empty cell
        return None
    return None if math.isnan(number) else number


def read_run_curves(run_dir: Union[str, Path], x_key: Optional[str] = None) -> RunCurves:
    """Reads RUN_DIR/metrics.csv.

    Accepted layouts: a `val_loss` column filled on evaluation rows only (rows without it are training
    rows; a row with both counts for both), rows marked by a `split`/`kind`/`stage` column
    (`train`/`val`) with their value in `loss`, or validation rows with an empty `loss`.
    The x axis is `x_key`: tokens when the file has them, else the step.
    """
    run_dir = Path(run_dir)
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise UserError(f"{run_dir} has no metrics.csv")
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    columns = set(rows[0]) if rows else set()
    if not {"loss", "val_loss"} & columns:
        raise UserError(f"{path} has neither a loss nor a val_loss column")
    if x_key is None:
        x_key = "tokens" if "tokens" in columns else "step"
    if x_key not in columns:
        raise UserError(f"{path} has no {x_key} column")
    split_key = next((k for k in ("split", "kind", "stage") if k in columns), None)
    curves = RunCurves(name=run_dir.resolve().name, x_label=x_key)
    for row in rows:
        x = _number(row.get(x_key))
        if x is None:
            continue
        loss, val_loss = _number(row.get("loss")), _number(row.get("val_loss"))
        split = (row.get(split_key) or "").strip().lower() if split_key else ""
        if split.startswith("val") or split == "eval":
            val_loss = val_loss if val_loss is not None else loss
            loss = None
        if loss is not None:
            curves.train_x.append(x)
            curves.train_loss.append(loss)
        if val_loss is not None:
            curves.val_x.append(x)
            curves.val_loss.append(val_loss)
    if not curves.train_loss and not curves.val_loss:
        raise UserError(f"{path} holds no loss values")
    return curves


def load_runs(run_dirs: Sequence[Union[str, Path]]) -> list[RunCurves]:
    """Reads every run; all against tokens when every run logs them, else all against steps."""
    runs = [read_run_curves(run_dir) for run_dir in run_dirs]
    if any(run.x_label != "tokens" for run in runs):
        runs = [read_run_curves(run_dir, x_key="step") for run_dir in run_dirs]
    return runs


def moving_average(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over `window` points (shorter at the start); window <= 1 returns the values."""
    if window <= 1:
        return list(values)
    out, total = [], 0.0
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_runs(
    runs: Sequence[RunCurves],
    path: Union[str, Path],
    labels: Optional[Sequence[str]] = None,
    smooth: int = 20,
) -> Path:
    """Training loss (smoothed, raw underneath) and validation loss of several runs, two panels."""
    from matplotlib.ticker import FuncFormatter

    if labels is not None and len(labels) != len(runs):
        raise UserError(f"{len(labels)} labels for {len(runs)} runs")
    labels = list(labels) if labels is not None else [run.name for run in runs]
    x_label = runs[0].x_label if runs else "tokens"
    # A trailing mean lags a falling curve by half its window: keep the window to a tenth of the
    # shortest run, so a short run is not drawn far above its own losses.
    shortest = min((len(run.train_loss) for run in runs if run.train_loss), default=0)
    smooth = max(1, min(smooth, shortest // 10))
    fig, (ax_train, ax_val) = new_figure(12.0, 4.5, ncols=2)
    for i, (run, label) in enumerate(zip(runs, labels)):
        color = f"C{i % 10}"
        if run.train_loss:
            if smooth > 1:
                ax_train.plot(run.train_x, run.train_loss, color=color, alpha=0.15, linewidth=0.8)
            ax_train.plot(run.train_x, moving_average(run.train_loss, smooth), color=color, label=label)
        if run.val_loss:
            ax_val.plot(run.val_x, run.val_loss, color=color, marker="o", markersize=3, label=label)
    for ax, title in ((ax_train, "training loss" + (f" (moving average of {smooth})" if smooth > 1 else "")), (ax_val, "validation loss")):
        ax.set_title(title)
        ax.set_xlabel(x_label)
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: format_tokens(value)))
        if ax.has_data():
            ax.legend()
    return save_figure(fig, path)
