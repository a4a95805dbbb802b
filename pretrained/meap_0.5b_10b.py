"""MEAP, 0.5B parameters, 10B tokens of C4."""

base = "_base.py"
model_name = "tiny_LLaMA_0.5b_mask"
max_tokens = 10_000_000_000
out_dir = "out/meap_0.5b_10b_mask0.15"
