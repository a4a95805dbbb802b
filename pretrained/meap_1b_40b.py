"""MEAP-1.1B on "40B" tokens with its own cosine schedule, as upstream's
MEAP-Pretain/pretrained/meap_1b_0.15_40b.py ran it: 40,000 steps of 256 x 4096 tokens = 41.9B tokens,
warmup 4,000 steps."""

base = "meap_1b.py"
max_steps = 40_000
out_dir = "out/meap_1b_40b_mask0.15"
