"""Evaluating every final checkpoint the same way: validation loss, retrieval, attention.

- validation loss: the trainer's own unmasked validation at the last step (metrics.csv), the same
  validation batches for every run of a recipe;
- retrieval: `lit_gpt.eval.retrieval` on prompts fixed by the prompt seed, written to
  RUN/eval/<task>/ (accuracy and answer log-probability per prompt);
- attention: `lit_gpt.eval.attention` on the first prompts of the same grid, in RUN/attention/<task>/.

Results already written are read back instead of recomputed, so a re-run costs nothing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

from lit_gpt.errors import UserError
from tools.compare.runs import Run
from tools.compare.settings import ComparisonSettings


def final_val_loss(run: Run) -> tuple[Optional[float], Optional[int]]:
    """(validation loss, step) of the last validation in RUN/metrics.csv; (None, None) without one."""
    from tools.run_curves import read_run_curves

    curves = read_run_curves(run.run_dir, x_key="step")
    if not curves.val_loss:
        return None, None
    return curves.val_loss[-1], int(curves.val_x[-1])


def _read_or_run(path: Path, compute, announce: str) -> dict:
    """An earlier run's results, read back silently; otherwise announces the evaluation and runs it."""
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as err:
            raise UserError(f"{path} is not readable JSON ({err}): delete it to evaluate again") from None
    print(announce, flush=True)
    return compute()


def task_lengths(tokenizer, task: str, lengths: list[int], explicit: bool) -> tuple[list[int], list[int]]:
    """(lengths the task's template fits in, lengths dropped). With explicit lengths, too short is an error."""
    from lit_gpt.eval.prompts import SamplePrompts

    fits, dropped = [], []
    for length in lengths:
        try:
            SamplePrompts(tokenizer, task, length, 0, 0)
            fits.append(length)
        except UserError:
            if explicit:
                raise
            dropped.append(length)
    return fits, dropped


# Lengths beyond the model's positions (only ever given explicitly: the defaults fit the block size) are
# evaluated with a warning, as in every arm alike: refusing them would end the comparison after its training.
def retrieval(run: Run, checkpoint: Path, task: str, lengths: list[int], settings: ComparisonSettings) -> dict:
    from lit_gpt.eval.retrieval import RetrievalSettings, run_retrieval

    out = run.run_dir / "eval" / task
    config = RetrievalSettings(
        model_dir=str(checkpoint), task=task, context_lengths=lengths, depths=settings.depths, samples=settings.samples,
        out_dir=str(out), seed=settings.prompt_seed, batch_size=settings.eval_batch_size,
        haystack_file=settings.haystack_file, device=settings.eval_device, allow_beyond_context=True,
    )
    return _read_or_run(out / "results.json", lambda: run_retrieval(config), f"== {run.name}: {task} retrieval")


def attention(run: Run, checkpoint: Path, task: str, lengths: list[int], settings: ComparisonSettings) -> dict:
    from lit_gpt.eval.attention import AttentionSettings, run_attention

    out = run.run_dir / "attention" / task
    config = AttentionSettings(
        model_dir=str(checkpoint), task=task, context_lengths=lengths, depths=settings.depths,
        samples=settings.attention_samples, out_dir=str(out), seed=settings.prompt_seed,
        haystack_file=settings.haystack_file, device=settings.eval_device, allow_beyond_context=True,
    )
    return _read_or_run(out / "results.json", lambda: run_attention(config), f"== {run.name}: {task} attention")


def prompt_keys(results: dict) -> list[tuple]:
    """What identifies a prompt across runs: its cell, sample index and expected answer."""
    return [(r["context_length"], r["depth"], r["sample"], r.get("expected")) for r in results["records"]]


def evaluate_run(run: Run, checkpoint: Path, settings: ComparisonSettings, lengths: dict[str, list[int]]) -> dict[str, Any]:
    val_loss, val_step = final_val_loss(run)
    out: dict[str, Any] = {"val_loss": val_loss, "val_step": val_step, "retrieval": {}, "attention": {}}
    for task in settings.tasks:
        if lengths.get(task):
            out["retrieval"][task] = retrieval(run, checkpoint, task, lengths[task], settings)
    for task in settings.attention_tasks:
        if lengths.get(task):
            out["attention"][task] = attention(run, checkpoint, task, lengths[task], settings)
    return out
