"""`scripts/meap_vs_ntp.py`: train both arms per seed, evaluate every final checkpoint, report.

    python scripts/meap_vs_ntp.py --config pretrained/meap_tiny.py --seeds 3 --out_dir out/cmp [--max_steps 200 ...]

Writes OUT/comparison.json (the settings; a re-run must match them), OUT/<arm>_seed<k>/ (runs and
their evaluations), OUT/summary.json, OUT/report.md and OUT/figures/. Re-running continues
unfinished runs and skips finished runs and evaluations.
"""

from __future__ import annotations

import shlex
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from lit_gpt.cli import exit_on_user_error
from tools.compare import evaluate, report, runs as runs_mod
from tools.compare.settings import block_size_of, check_or_write_record, default_context_lengths, parse_args, record_of
from lit_gpt.eval import options


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = shlex.join(["python", "scripts/meap_vs_ntp.py", *argv])
    settings, args = parse_args(argv)
    out_dir = Path(settings.out_dir).expanduser()
    record = record_of(settings, args, command)
    resumed = check_or_write_record(out_dir, record)
    print(f"{'continuing' if resumed else 'starting'} the comparison in {out_dir}: MEAP (mask ratio "
          f"{settings.mask_ratio:g}) vs NTP, {settings.seeds} seeds", flush=True)
    started = time.perf_counter()

    # Lengths are fitted to the tokenizer before any training, so a bad choice fails at once.
    from lit_gpt.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(args.tokenizer_dir)
    explicit = settings.context_lengths is not None
    candidates = settings.context_lengths or default_context_lengths(block_size_of(args))
    lengths, dropped = {}, {}
    for task in sorted(set(settings.tasks) | set(settings.attention_tasks)):
        lengths[task], dropped[task] = evaluate.task_lengths(tokenizer, task, candidates, explicit)
        if dropped[task]:
            print(f"note: {task} skips context lengths {dropped[task]} (too short for its template)", flush=True)

    planned = runs_mod.plan_runs(out_dir, settings.seeds, args.seed, settings.mask_ratio)
    checkpoints = {run.name: runs_mod.train(run, settings.config, settings.pretrain_overrides) for run in planned}
    train_seconds = time.perf_counter() - started
    results = {}
    for run in planned:
        results[run.name] = {"checkpoint": str(checkpoints[run.name]),
                             **evaluate.evaluate_run(run, checkpoints[run.name], settings, lengths)}
    summary = report.build_summary(planned, results, settings, lengths, dropped, record)
    summary["timing"] = {"train_seconds_this_invocation": round(train_seconds, 1),
                         "total_seconds_this_invocation": round(time.perf_counter() - started, 1)}
    figures = report.write_figures(planned, results, summary, out_dir, settings)
    commands = [command] + [shlex.join(["python", *runs_mod.pretrain_command(run, settings.config, settings.pretrain_overrides)[1:]])
                            for run in planned]
    options.write_json(out_dir / "summary.json", summary)
    path = report.write_report(summary, out_dir, commands, figures)
    print(path.read_text().split("\n## Settings")[0])
    print(f"wrote {out_dir / 'summary.json'}, {path} and {len(figures)} figures in {out_dir / report.FIGURES}")
    return summary
