"""MEAP-1.1B on 60B tokens (its own cosine schedule over 60B tokens)."""

base = "meap_1b.py"
max_tokens = 60_000_000_000
out_dir = "out/meap_1b_60b_mask0.15"
