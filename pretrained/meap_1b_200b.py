"""MEAP-1.1B on 200B tokens (its own cosine schedule over 200B tokens)."""

base = "meap_1b.py"
max_tokens = 200_000_000_000
out_dir = "out/meap_1b_200b_mask0.15"
