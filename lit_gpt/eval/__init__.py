"""Evaluation of MEAP and NTP checkpoints: the paper's retrieval benchmarks, run offline.

- `lit_gpt.eval.retrieval`: passkey, needle-in-a-haystack and key-value retrieval over a grid of
  context lengths x needle depths (results.json + heatmap.png).
- `lit_gpt.eval.multidoc_qa`: lost-in-the-middle multi-document QA with a gold-position sweep.
- `lit_gpt.eval.plots`: heatmaps, accuracy-vs-position lines and the training curves of several runs.

Nothing here downloads anything: prompts are generated from seeded RNGs and local text.
"""
