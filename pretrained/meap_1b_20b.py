"""MEAP-1.1B on 20B tokens (its own cosine schedule over 20B tokens)."""

base = "meap_1b.py"
max_tokens = 20_000_000_000
out_dir = "out/meap_1b_20b_mask0.15"
