"""summary.json, report.md and the figures of a comparison.

Per task, two scores are compared prompt by prompt: the accuracy (0/1 per prompt, the task's
match) and the answer log-probability (continuous). Attention: the needle share at the answer
positions, mean over layers, per prompt. Validation loss: one number per run, compared over
seeds. Every comparison is `stats.paired_comparison` (its docstring states the method); a verdict needs a
seed-level interval, which needs stats.MIN_SEEDS_FOR_VERDICT seeds.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any, Optional, Sequence

from lit_gpt.errors import UserError
from lit_gpt.io.atomic import write_text
from tools.compare import stats
from tools.compare.evaluate import prompt_keys
from tools.compare.runs import Run
from tools.compare.settings import ComparisonSettings

FIGURES = "figures"
ARM_COLORS = {"meap": "C0", "ntp": "C1"}


def _by_seed(runs: Sequence[Run], results: dict[str, dict], arm: str) -> list[tuple[Run, dict]]:
    return sorted(((r, results[r.name]) for r in runs if r.arm == arm), key=lambda pair: pair[0].seed_index)


def _paired_matrix(runs, results, arm: str, section: str, task: str, value) -> tuple[list[list[float]], list]:
    """(scores[seed][prompt], the prompts' keys), checking every seed saw the same prompts."""
    rows, keys = [], None
    for run, result in _by_seed(runs, results, arm):
        task_results = result[section][task]
        run_keys = prompt_keys(task_results)
        if keys is None:
            keys = run_keys
        elif run_keys != keys:
            raise UserError(f"{run.name}: its {task} prompts differ from the other runs' (another tokenizer?)")
        rows.append([value(r) for r in task_results["records"]])
    return rows, keys


def compare_scores(runs, results, settings: ComparisonSettings, section: str, task: str, value) -> dict:
    """MEAP against NTP on one score per prompt (higher is better for every score compared here)."""
    meap, meap_keys = _paired_matrix(runs, results, "meap", section, task, value)
    ntp, ntp_keys = _paired_matrix(runs, results, "ntp", section, task, value)
    if meap_keys != ntp_keys:
        raise UserError(f"the MEAP and NTP runs were evaluated on different {task} prompts")
    return stats.paired_comparison(meap, ntp, settings.bootstrap_resamples, settings.bootstrap_seed)


def _needle_share(record: dict) -> float:
    return statistics.fmean(record["needle"])


def build_summary(runs: Sequence[Run], results: dict[str, dict], settings: ComparisonSettings,
                  lengths: dict[str, list[int]], dropped: dict[str, list[int]], record: dict) -> dict[str, Any]:
    per_run = []
    for run in runs:
        result = results[run.name]
        per_run.append({
            "run": run.name, "arm": run.arm, "seed_index": run.seed_index, "seed": run.seed, "mask_ratio": run.mask_ratio,
            "run_dir": str(run.run_dir), "checkpoint": result["checkpoint"],
            "val_loss": result["val_loss"], "val_step": result["val_step"],
            "retrieval": {
                task: {"accuracy": r["accuracy"]["overall"], "metric": r["accuracy"]["metric"],
                       "answer_logprob": r["logprob"]["overall"], "n_prompts": r["accuracy"]["n"]}
                for task, r in result["retrieval"].items()
            },
            "attention": {task: a["summary"] for task, a in result["attention"].items()},
        })
    comparison: dict[str, Any] = {}
    val = {arm: [results[r.name]["val_loss"] for r in runs if r.arm == arm] for arm in ("meap", "ntp")}
    if all(v is not None for values in val.values() for v in values):
        comparison["val_loss"] = stats.seed_comparison(val["meap"], val["ntp"], higher_is_better=False)
    for task in settings.tasks:
        if not lengths.get(task):
            continue
        acc = compare_scores(runs, results, settings, "retrieval", task, lambda r: float(r["correct"]))
        logprob = compare_scores(runs, results, settings, "retrieval", task, lambda r: r["answer_logprob"])
        comparison[task] = {"accuracy": acc, "answer_logprob": logprob}
    for task in settings.attention_tasks:
        if not lengths.get(task):
            continue
        share = compare_scores(runs, results, settings, "attention", task, _needle_share)
        comparison.setdefault(task, {})["attention_needle_share"] = share
    return {
        "settings": record,
        "context_lengths": lengths,
        "context_lengths_dropped": dropped,
        "prompt_seed": settings.prompt_seed,
        "bootstrap": {
            "method": stats.METHOD, "min_seeds_for_verdict": stats.MIN_SEEDS_FOR_VERDICT,
            "resamples": settings.bootstrap_resamples, "seed": settings.bootstrap_seed,
        },
        "runs": per_run,
        "comparison": comparison,
    }


# ----------------------------------------------------------------------------- figures
def plot_loss_curves(runs: Sequence[Run], path: Path) -> Path:
    """Training loss (moving average) and validation loss, both arms, one line per seed."""
    from lit_gpt.eval.plots import new_figure, save_figure
    from tools.run_curves import moving_average, read_run_curves

    fig, (ax_train, ax_val) = new_figure(12.0, 4.5, ncols=2)
    styles = ("-", "--", ":", "-.")
    for run in runs:
        curves = read_run_curves(run.run_dir, x_key="step")
        color, style = ARM_COLORS[run.arm], styles[run.seed_index % len(styles)]
        window = max(1, min(20, len(curves.train_loss) // 10))
        if curves.train_loss:
            ax_train.plot(curves.train_x, moving_average(curves.train_loss, window), color=color, linestyle=style, label=run.label)
        if curves.val_loss:
            ax_val.plot(curves.val_x, curves.val_loss, color=color, linestyle=style, marker="o", markersize=3, label=run.label)
    for ax, title in ((ax_train, "training loss (MEAP: on masked inputs)"), (ax_val, "validation loss (unmasked)")):
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel("loss")
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=7)
    return save_figure(fig, path)


def _mean_grid(runs, results, arm: str, task: str, key: str) -> dict[int, dict[float, float]]:
    from lit_gpt.eval.retrieval import grid_of

    grids = [grid_of(result["retrieval"][task][key]) for _, result in _by_seed(runs, results, arm)]
    return {length: {depth: statistics.fmean(g[length][depth] for g in grids) for depth in grids[0][length]}
            for length in grids[0]}


def plot_task_heatmaps(runs, results, task: str, metric: str, folder: Path) -> list[Path]:
    """Per arm (mean over seeds) and MEAP - NTP, for accuracy and for the answer log-probability."""
    from lit_gpt.eval.plots import plot_heatmap
    from lit_gpt.eval.retrieval import LOGPROB_HEATMAP

    paths = []
    for key, label in (("accuracy", f"accuracy ({metric})"), ("logprob", "answer log-prob")):
        grids = {arm: _mean_grid(runs, results, arm, task, key) for arm in ("meap", "ntp")}
        style = {} if key == "accuracy" else {k: v for k, v in LOGPROB_HEATMAP.items()}
        if key == "logprob":  # one colour scale for both arms
            style["vmin"] = min(v for g in grids.values() for row in g.values() for v in row.values())
        for arm, grid in grids.items():
            paths.append(plot_heatmap(grid, folder / f"{task}_{key}_{arm}.png",
                                      title=f"{task}: {arm.upper()} {label}, mean over seeds", **style))
        diff = {length: {depth: grids["meap"][length][depth] - grids["ntp"][length][depth] for depth in row}
                for length, row in grids["meap"].items()}
        bound = max((abs(v) for row in diff.values() for v in row.values()), default=0.0)
        # Enough decimals that small differences do not all print as +0.00.
        fmt = ("{:+.2f}" if bound >= 0.1 else "{:+.3f}" if bound >= 0.01 else "{:+.4f}") if key == "logprob" else None
        paths.append(plot_heatmap(
            diff if key == "logprob" else {l: {d: 100 * v for d, v in row.items()} for l, row in diff.items()},
            folder / f"{task}_{key}_diff.png", title=f"{task}: MEAP - NTP {label}",
            value_format=fmt or "{:+.0f}", colorbar_label=f"MEAP - NTP {label}" + ("" if fmt else " (points)"),
            diverging=True,
        ))
    return paths


def plot_attention_comparison(runs, results, task: str, path: Path) -> Path:
    """Needle share per layer: each run as a thin line, each arm's mean over seeds as a thick one."""
    from lit_gpt.eval.plots import new_figure, save_figure

    fig, ax = new_figure(6.5, 4.2)
    uniform = []
    for arm in ("meap", "ntp"):
        seeds = [result["attention"][task]["summary"] for _, result in _by_seed(runs, results, arm)]
        layers = list(range(len(seeds[0]["per_layer"]["needle"])))
        for s in seeds:
            ax.plot(layers, [100 * v for v in s["per_layer"]["needle"]], color=ARM_COLORS[arm], alpha=0.3, linewidth=1)
            uniform.append(s["uniform_needle_share"])
        mean = [statistics.fmean(s["per_layer"]["needle"][i] for s in seeds) for i in layers]
        ax.plot(layers, [100 * v for v in mean], color=ARM_COLORS[arm], marker="o", linewidth=2.5, label=f"{arm.upper()} (mean of seeds)")
    ax.axhline(100 * statistics.fmean(uniform), color="black", linestyle="--", linewidth=1, label="if attention were uniform")
    ax.set_xticks(layers)
    ax.set_xlabel("layer")
    ax.set_ylabel("attention share on the needle (%)")
    ax.set_title(f"{task}: attention on the needle at the answer positions")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


def write_figures(runs, results, summary: dict, out_dir: Path, settings: ComparisonSettings) -> list[Path]:
    folder = out_dir / FIGURES
    paths = [plot_loss_curves(runs, folder / "loss_curves.png")]
    for task in summary["comparison"]:
        if task == "val_loss":
            continue
        if "accuracy" in summary["comparison"][task]:
            metric = summary["runs"][0]["retrieval"][task]["metric"]
            paths += plot_task_heatmaps(runs, results, task, metric, folder)
        if "attention_needle_share" in summary["comparison"][task]:
            paths.append(plot_attention_comparison(runs, results, task, folder / f"{task}_attention.png"))
    return paths


# ----------------------------------------------------------------------------- report.md
def _fmt(value: Optional[float], percent: bool, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    sign = "+" if signed else ""
    return f"{100 * value:{sign}.1f}" if percent else f"{value:{sign}.3f}"


def _interval_cell(result: dict, percent: bool) -> str:
    """The seed-level interval, else the prompt-level one marked as conditional on the seeds."""
    diff = _fmt(result["difference"], percent, True)
    if result.get("ci_low") is not None:
        return f"{diff} [{_fmt(result['ci_low'], percent, True)}, {_fmt(result['ci_high'], percent, True)}]"
    if result.get("prompt_ci_low") is not None:
        return (f"{diff} [{_fmt(result['prompt_ci_low'], percent, True)}, {_fmt(result['prompt_ci_high'], percent, True)}]"
                " given these seeds")
    return f"{diff} (no interval)"


def _arm_cell(values: Sequence[float], percent: bool) -> str:
    mean = statistics.fmean(values)
    spread = stats.seed_spread(values)
    return _fmt(mean, percent) + (f" ± {_fmt(spread, percent)}" if spread is not None else "")


ROWS = (
    ("val_loss", None, "validation loss (unmasked; lower is better)", False),
    ("accuracy", "retrieval", "accuracy (%)", True),
    ("answer_logprob", "retrieval", "answer log-prob (nats/token)", False),
    ("attention_needle_share", "attention", "attention on the needle (%)", True),
)


def _run_values(summary: dict, arm: str, task: Optional[str], key: str) -> list[float]:
    runs = [r for r in summary["runs"] if r["arm"] == arm]
    if key == "val_loss":
        return [r["val_loss"] for r in runs]
    if key == "attention_needle_share":
        return [r["attention"][task]["mean_over_layers"]["needle"] for r in runs]
    return [r["retrieval"][task][key] for r in runs]


def write_report(summary: dict, out_dir: Path, commands: Sequence[str], figures: Sequence[Path]) -> Path:
    comparison, record = summary["comparison"], summary["settings"]
    c, p = record["comparison"], record["pretrain"]
    n_seeds = len({r["seed_index"] for r in summary["runs"]})
    lines = [
        "# MEAP vs NTP",
        "",
        f"Recipe `{c['config']}`, model `{p['model_name']}`, MEAP mask ratio {c['mask_ratio']:g} against 0 (NTP), "
        f"{n_seeds} seeds (trainer seeds {', '.join(str(r['seed']) for r in summary['runs'] if r['arm'] == 'meap')}), "
        f"the same data order, schedule and seed in both arms.",
        "",
        "| task | measure | MEAP (mean ± sd over seeds) | NTP | MEAP − NTP [95 % CI] | prompts | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    sentences = []
    items: list[tuple[str, str, dict, str, bool]] = []
    if "val_loss" in comparison:
        items.append(("-", "val_loss", comparison["val_loss"], ROWS[0][2], False))
    for task, entry in comparison.items():
        if task == "val_loss":
            continue
        for key, _, label, percent in ROWS[1:]:
            if key in entry:
                items.append((task, key, entry[key], label, percent))
    for task, key, result, label, percent in items:
        meap = _run_values(summary, "meap", None if task == "-" else task, key)
        ntp = _run_values(summary, "ntp", None if task == "-" else task, key)
        ci = _interval_cell(result, percent)
        prompts = "-" if task == "-" else str(result["n_prompts"])
        lines.append(f"| {task} | {label} | {_arm_cell(meap, percent)} | {_arm_cell(ntp, percent)} | {ci} | {prompts} | {result['verdict']} |")
        where = "validation loss" if task == "-" else f"{task}, {label.split(' (')[0]}"
        sentences.append(f"- {where}: **{result['verdict']}**.")
    if n_seeds < stats.MIN_SEEDS_FOR_VERDICT:
        sentences.append(f"- {n_seeds} seeds: not enough seeds for a verdict (a seed-level interval needs at least "
                         f"{stats.MIN_SEEDS_FOR_VERDICT}); the intervals shown hold only for these seeds' models.")
    lines += [
        "",
        "Method: " + summary["bootstrap"]["method"] + f" (bootstrap: {summary['bootstrap']['resamples']} resamples, "
        f"seed {summary['bootstrap']['seed']}.)",
        "",
        *sentences,
        "",
        "## Settings",
        "",
        f"- training: budget {', '.join(f'{k} {p[k]:g}' for k in ('max_steps', 'max_tokens') if p.get(k))}, global batch {p['global_batch_size']}, "
        f"micro batch {p['micro_batch_size']}, block size {p.get('block_size') or 'the model default'}, lr {p['learning_rate']:g} -> "
        f"{p['min_lr']:g}, data `{p['train_data_dir']}`, tokenizer `{p['tokenizer_dir']}`",
        f"- evaluation prompts: seed {summary['prompt_seed']}, depths {', '.join(f'{d:g}' for d in c['depths'])}, "
        f"{c['samples']} samples per cell (attention: {c['attention_samples']})",
    ]
    for task, lengths in summary["context_lengths"].items():
        dropped = summary["context_lengths_dropped"].get(task)
        note = f" (dropped, too short for its template: {', '.join(map(str, dropped))})" if dropped else ""
        lines.append(f"- {task}: context lengths {', '.join(map(str, lengths)) or 'none'}{note}")
    lines += ["", "## Reproduce", "", "```bash", *commands, "```", "", "## Figures", ""]
    lines += [f"![{f.stem}]({f.relative_to(out_dir).as_posix()})" for f in figures]
    return write_text(out_dir / "report.md", "\n".join(lines) + "\n", "the report")
