"""MEAP against NTP, measured: paired training runs, one evaluation, confidence intervals.

- `settings`: the command line, the recipe it resolves to, and the record kept in out_dir;
- `runs`: trains both arms per seed with the normal pretraining entry point (resumable);
- `evaluate`: validation loss, retrieval (accuracy and answer log-probability) and attention per run;
- `stats`: seed-level intervals (seeds and prompts random) and the verdicts they support;
- `report`: summary.json, report.md and the figures.

Entry point: scripts/meap_vs_ntp.py (`tools.compare.cli.main`).
"""
