"""MEAP, 0.3B parameters, 5B tokens of C4."""

base = "_base.py"
model_name = "tiny_LLaMA_300M_mask"
max_tokens = 5_000_000_000
out_dir = "out/meap_0.3b_5b_mask0.15"
