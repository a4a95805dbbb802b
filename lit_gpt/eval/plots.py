"""Figures, drawn with matplotlib's object API on the Agg canvas: nothing depends on a display or pyplot's state."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Mapping, Optional, Union

from lit_gpt.errors import UserError


# Red -> yellow -> green, the needle-in-a-haystack colours.
NIAH_COLORS = ("#F0496E", "#EBB839", "#0CD79F")


def new_figure(width: float, height: float, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, ncols)


def save_figure(fig, path: Union[str, Path]) -> Path:
    from lit_gpt.io.atomic import open_atomic

    path = Path(path)
    kind = path.suffix.lstrip(".").lower() or "png"
    if kind not in fig.canvas.get_supported_filetypes():
        raise UserError(f"{path}: cannot draw a .{kind} figure; use .png, .pdf or .svg")
    fig.tight_layout()
    with open_atomic(path, "wb", "figure") as f:
        fig.savefig(f, dpi=150, format=kind)
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
    fig, ax = new_figure(max(5.0, 1.0 + 0.9 * len(lengths)), max(3.5, 1.2 + 0.5 * len(depths)))
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
    return save_figure(fig, path)


def plot_accuracy_by_position(accuracy: Mapping[int, float], path: Union[str, Path], title: str, label: str) -> Path:
    """`accuracy[position]` (0-based gold document position) -> the lost-in-the-middle line plot."""
    positions = sorted(accuracy)
    fig, ax = new_figure(6.0, 4.0)
    ax.plot(positions, [100 * accuracy[p] for p in positions], marker="o", label=label)
    ax.set_xticks(positions)
    ax.set_xlabel("position of the document with the answer (0-based, as in results.json)")
    ax.set_ylabel("accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend()
    return save_figure(fig, path)
