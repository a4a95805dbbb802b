"""Benchmark of the training step: kernel sets x (MEAP, NTP), against Hugging Face (+ Liger).

`timing` (clocks, the round-robin schedule), `stats` (medians, paired ratios), `probes` (the
matmul ceiling, attention backends, collate time, host syncs), `workload` (the trainer's batches,
Fabric and optimizer), `variants` (the models compared), `batch_search` (`--micro_batch_size
auto`), `run` (the whole run) and `report` (ratios and the table). `scripts/benchmark.py` is the
command line; docs/PERFORMANCE.md the method.
"""
