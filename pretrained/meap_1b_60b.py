"""MEAP-1.1B on "60B" tokens with its own cosine schedule, as upstream's
MEAP-Pretain/pretrained/meap_1b_0.15_60b.py ran it: 60,000 steps of 256 x 4096 tokens = 62.9B tokens,
warmup 6,000 steps."""

base = "meap_1b.py"
max_steps = 60_000
out_dir = "out/meap_1b_60b_mask0.15"
