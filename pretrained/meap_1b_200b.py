"""MEAP-1.1B on "200B" tokens: upstream's MEAP-Pretain/pretrained/meap_1b.py, 190,000 steps = 199.2B
tokens, warmup 19,000 steps; the same run as meap_1b.py under its own out_dir."""

base = "meap_1b.py"
max_steps = 190_000
out_dir = "out/meap_1b_200b_mask0.15"
