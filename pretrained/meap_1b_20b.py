"""MEAP-1.1B on "20B" tokens with its own cosine schedule, as upstream's
MEAP-Pretain/pretrained/meap_1b_0.15_20b.py ran it: 20,000 steps of 256 x 4096 tokens = 21.0B tokens,
warmup 2,000 steps."""

base = "meap_1b.py"
max_steps = 20_000
out_dir = "out/meap_1b_20b_mask0.15"
