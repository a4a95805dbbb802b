"""Passkey, needle-in-a-haystack and key-value retrieval over context lengths x needle depths.

    python -m lit_gpt.eval.retrieval --model_dir DIR --task niah \\
        --context_lengths 1024,2048,4096 --depths 0,0.25,0.5,0.75,1 --samples 20 --out_dir OUT

Prompts are generated offline (`lit_gpt.eval.prompts`), decoded greedily in batches and scored
against the needle's value; each also gets the mean log-probability of its answer's tokens, which
moves with training long before greedy decoding gets an answer right. The outputs are described in
docs/EVALUATION.md.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

from lit_gpt.eval import options
from lit_gpt.eval.options import setting
from lit_gpt.eval.prompts import RetrievalPrompt
from lit_gpt.eval.scoring import METRICS, scored

DEFAULT_MAX_NEW_TOKENS = {"passkey": 16, "niah": 24, "kv": 64}
# Numbers are matched as substrings (RULER); UUIDs with lost in the middle's best-subspan EM.
DEFAULT_METRIC = {"passkey": "substring", "niah": "substring", "kv": "best_subspan_em"}
OUTPUT_FILES = ("results.json", "heatmap.png", "logprob_heatmap.png")
# Log-probabilities are <= 0: the colour scale runs from the worst cell up to 0 (certain).
LOGPROB_HEATMAP = {"vmin": None, "vmax": 0.0, "value_format": "{:.2f}", "colorbar_label": "answer log-prob (nats/token)"}


@dataclass(kw_only=True)
class RetrievalSettings(options.PromptGridSettings):
    batch_size: int = setting(8, type=options.positive_int)
    max_new_tokens: Optional[int] = setting(None, type=options.positive_int)  # None: DEFAULT_MAX_NEW_TOKENS[task]
    metric: Optional[str] = setting(None, choices=list(METRICS), help="default: substring, best_subspan_em for kv")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.max_new_tokens = self.max_new_tokens or DEFAULT_MAX_NEW_TOKENS[self.task]
        self.metric = self.metric or DEFAULT_METRIC[self.task]  # --metric's choices are the METRICS


def score_prompts(
    prompts: Sequence[RetrievalPrompt],
    generations: Sequence[str],
    metric: str,
    logprobs: Sequence[float],
    answer_tokens: Sequence[int],
) -> list[dict]:
    """One record per prompt: where the needle was, what was expected and generated, and the scores."""
    return [
        {
            "context_length": prompt.context_length,
            "depth": prompt.depth,
            "sample": prompt.sample_index,
            "prompt_tokens": len(prompt.input_ids),
            "needle_position": prompt.needle_start,
            "needle_end": prompt.needle_end,
            "context_start": prompt.context_start,
            "context_end": prompt.context_end,
            "needle_depth": round(prompt.needle_depth, 4),
            "key": prompt.key,
            "expected": prompt.answer,
            **scored(generation, prompt.answer, metric),
            "answer_tokens": n_answer,
            "answer_logprob": logprob,
        }
        for prompt, generation, logprob, n_answer in zip(prompts, generations, logprobs, answer_tokens)
    ]


def summarize(records: Sequence[dict], value) -> dict:
    """Means of `value(record)` overall, by length, by depth and by length and depth."""
    by_cell, by_length, by_depth = defaultdict(list), defaultdict(list), defaultdict(list)
    for r in records:
        by_cell[(r["context_length"], r["depth"])].append(value(r))
        by_length[r["context_length"]].append(value(r))
        by_depth[r["depth"]].append(value(r))
    grid: dict[str, dict[str, float]] = defaultdict(dict)
    for (length, depth), values in sorted(by_cell.items()):
        grid[str(length)][f"{depth:g}"] = statistics.fmean(values)
    return {
        "overall": statistics.fmean([value(r) for r in records]),
        "by_length": {str(k): statistics.fmean(v) for k, v in sorted(by_length.items())},
        "by_depth": {f"{k:g}": statistics.fmean(v) for k, v in sorted(by_depth.items())},
        "by_length_depth": dict(grid),
    }


def format_table(accuracy: dict, title: str, percent: bool = True) -> str:
    """Accuracy (%) or another per-cell mean with a row per length, a column per depth, and the means."""
    scale, width = (100, 1) if percent else (1, 2)
    depths = list(accuracy["by_depth"])
    head = f"{'length':>8} | " + " ".join(f"{float(d) * 100:>6g}%" for d in depths) + " |   mean"
    lines = [title, head, "-" * len(head)]
    for length, row in accuracy["by_length_depth"].items():
        cells = " ".join(f"{scale * row[d]:>7.{width}f}" if d in row else f"{'':>7}" for d in depths)
        lines.append(f"{length:>8} | {cells} | {scale * accuracy['by_length'][length]:>6.{width}f}")
    lines.append("-" * len(head))
    cells = " ".join(f"{scale * accuracy['by_depth'][d]:>7.{width}f}" for d in depths)
    lines.append(f"{'mean':>8} | {cells} | {scale * accuracy['overall']:>6.{width}f}")
    return "\n".join(lines)


def grid_of(summary: dict) -> dict[int, dict[float, float]]:
    """`summary["by_length_depth"]` with numeric keys, as the heatmaps take it."""
    return {int(k): {float(d): v for d, v in row.items()} for k, row in summary["by_length_depth"].items()}


def run_retrieval(settings: RetrievalSettings, command: Optional[str] = None) -> dict:
    """Builds the prompts, decodes, scores, and writes results.json and heatmap.png; returns the results."""
    from lit_gpt.eval.generation import answer_logprobs, greedy_generate, prompt_answer_ids
    from lit_gpt.eval.plots import plot_heatmap

    loaded = settings.load_model(OUTPUT_FILES)
    longest = max(settings.context_lengths) + settings.max_new_tokens
    settings.check_positions(longest, loaded, "--context_lengths (longest prompt + answer)")

    start = time.perf_counter()
    prompts, haystack = settings.prompts(loaded.tokenizer)
    prompt_seconds = time.perf_counter() - start
    out_dir = settings.make_out_dir()
    generations = greedy_generate(loaded.model, loaded.tokenizer, [p.input_ids for p in prompts],
                                  max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size, desc=settings.task)
    decode_seconds = time.perf_counter() - start - prompt_seconds
    answers = prompt_answer_ids(loaded.tokenizer, prompts)
    logprobs = answer_logprobs(loaded.model, [p.input_ids for p in prompts], answers, pad_id=loaded.tokenizer.pad_token_id,
                               batch_size=settings.batch_size, desc=f"{settings.task} log-prob")
    score_seconds = time.perf_counter() - start - prompt_seconds - decode_seconds
    records = score_prompts(prompts, generations, settings.metric, logprobs, [len(a) for a in answers])
    metric = settings.metric
    accuracy = {
        "metric": metric,
        **summarize(records, lambda r: r["scores"][metric]),
        "overall_by_metric": {name: statistics.fmean([r["scores"][name] for r in records]) for name in METRICS},
        "n": len(records),
    }
    logprob = {
        "unit": "mean log-probability of the answer tokens (nats per token, 0 = certain)",
        **summarize(records, lambda r: r["answer_logprob"]),
        "n": len(records),
    }
    results = {
        **settings.results_head(settings.task, loaded, haystack=haystack, command=command),
        "accuracy": accuracy,
        "logprob": logprob,
        "timing": {"prompt_seconds": round(prompt_seconds, 2), "decode_seconds": round(decode_seconds, 2),
                   "score_seconds": round(score_seconds, 2)},
        "records": records,
    }
    options.write_json(out_dir / "results.json", results)
    name = Path(settings.model_dir).name
    title = f"{settings.task}: {name} ({settings.metric} {100 * accuracy['overall']:.1f}%)"
    plot_heatmap(grid_of(accuracy), out_dir / "heatmap.png", title=title)
    plot_heatmap(grid_of(logprob), out_dir / "logprob_heatmap.png",
                 title=f"{settings.task}: {name} (answer log-prob {logprob['overall']:.2f})", **LOGPROB_HEATMAP)
    return results


def report(settings: RetrievalSettings, results: dict) -> None:
    title = f"{settings.task} accuracy (%, {settings.metric}) of {settings.model_dir}"
    print(format_table(results["accuracy"], title))
    title = f"{settings.task} mean log-probability of the answer tokens (nats/token, 0 = certain)"
    print(format_table(results["logprob"], title, percent=False))
    print(f"wrote {', '.join(str(Path(settings.out_dir) / name) for name in OUTPUT_FILES)}")


main = options.command(RetrievalSettings, run_retrieval, report, "lit_gpt.eval.retrieval", __doc__)

if __name__ == "__main__":
    main()
