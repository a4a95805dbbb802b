"""Figures: the length x depth retrieval heatmap, accuracy vs gold position, and run curves.

Figures are drawn with matplotlib's object API on the Agg canvas, so nothing depends on a display
or on pyplot's global state.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional, Sequence, Union

from lit_gpt.errors import UserError

# Red -> yellow -> green, the needle-in-a-haystack colours.
NIAH_COLORS = ("#F0496E", "#EBB839", "#0CD79F")


def _figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def _save(fig, path: Union[str, Path]) -> Path:
    from lit_gpt.io.atomic import open_atomic

    path = Path(path)
    fig.tight_layout()
    with open_atomic(path, "wb", "figure") as f:
        fig.savefig(f, dpi=150, format=path.suffix.lstrip(".") or "png")
    return path


def format_tokens(n: float) -> str:
    """4096 -> '4K', 1.5e9 -> '1.5B' (axis labels)."""
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(n) >= scale:
            value = n / scale
            return f"{value:.0f}{suffix}" if value == int(value) else f"{value:.1f}{suffix}"
    return f"{n:.0f}"


def plot_heatmap(
    accuracy: Mapping[int, Mapping[float, float]],
    path: Union[str, Path],
    title: str = "",
    *,
    vmin: Optional[float] = 0.0,
    vmax: Optional[float] = 1.0,
    value_format: Optional[str] = None,
    colorbar_label: str = "accuracy",
    diverging: bool = False,
) -> Path:
    """`accuracy[length][depth]` -> heatmap: context length on x, depth on y, cells annotated.

    By default values are accuracies in [0, 1], annotated in percent. Other values (log-probs,
    differences) pass their own range (None: the data's) and `value_format`; `diverging` centres a
    blue-white-red scale on 0, for differences.
    """
    from matplotlib.colors import LinearSegmentedColormap

    lengths = sorted(accuracy)
    depths = sorted({d for row in accuracy.values() for d in row})
    grid = [[accuracy[length].get(depth, math.nan) for length in lengths] for depth in depths]
    values = [v for row in grid for v in row if not math.isnan(v)]
    if diverging:
        bound = max((abs(v) for v in values), default=0.0) or 1.0  # all zero: any symmetric range
        vmin, vmax, cmap = -bound, bound, "RdBu"
    else:
        cmap = LinearSegmentedColormap.from_list("niah", NIAH_COLORS)
        if values:
            vmin = min(values) if vmin is None else vmin
            vmax = max(values) if vmax is None else vmax
            if vmin >= vmax:  # a constant grid still needs a non-empty colour range
                vmin = vmax - 1.0
    fmt = value_format.format if value_format else (lambda v: f"{100 * v:.0f}")
    fig, ax = _figure(max(5.0, 1.0 + 0.9 * len(lengths)), max(3.5, 1.2 + 0.5 * len(depths)))
    image = ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    for y, row in enumerate(grid):
        for x, value in enumerate(row):
            if not math.isnan(value):
                # The ends of the diverging scale are dark: white text stays readable there.
                dark = diverging and abs(value) > 0.6 * vmax
                ax.text(x, y, fmt(value), ha="center", va="center", fontsize=8, color="white" if dark else "black")
    ax.set_xticks(range(len(lengths)), [format_tokens(n) for n in lengths])
    ax.set_yticks(range(len(depths)), [f"{100 * d:g}%" for d in depths])
    ax.set_xlabel("context length (tokens)")
    ax.set_ylabel("needle depth")
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label=colorbar_label)
    return _save(fig, path)


def plot_accuracy_by_position(
    accuracy: Mapping[int, float],
    path: Union[str, Path],
    title: str = "",
    label: Optional[str] = None,
) -> Path:
    """`accuracy[position]` (0-based gold document position) -> the lost-in-the-middle line plot."""
    positions = sorted(accuracy)
    fig, ax = _figure(6.0, 4.0)
    ax.plot(positions, [100 * accuracy[p] for p in positions], marker="o", label=label)
    ax.set_xticks(positions)
    ax.set_xlabel("position of the document with the answer (0-based, as in results.json)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    if label:
        ax.legend()
    return _save(fig, path)


# ----------------------------------------------------------------------------- run curves
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
    fig, (ax_train, ax_val) = _figure(12.0, 4.5, ncols=2)
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
    return _save(fig, path)
