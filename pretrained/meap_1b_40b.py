"""MEAP-1.1B on 40B tokens (its own cosine schedule over 40B tokens)."""

base = "meap_1b.py"
max_tokens = 40_000_000_000
out_dir = "out/meap_1b_40b_mask0.15"
