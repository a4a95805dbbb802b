"""MEAP-1.1B on "20B" tokens with its own cosine schedule, as upstream's
MEAP-Pretain/pretrained/meap_1b_0.15_20b.py ran it: 20,000 steps of 256 x 4096 tokens = 21.0B tokens,
warmup 2,000 steps; it saves every 10,000 steps (the other 1B scripts every 20,000)."""

base = "meap_1b.py"
max_steps = 20_000
save_interval = 10_000
out_dir = "out/meap_1b_20b_mask0.15"
