"""MEAP, 0.1B parameters, 2B tokens of C4 (paper, Table of model sizes)."""

base = "_base.py"
model_name = "tiny_LLaMA_0.1b_mask"
max_tokens = 2_000_000_000
out_dir = "out/meap_0.1b_2b_mask0.15"
