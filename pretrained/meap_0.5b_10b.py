"""MEAP, 0.5B parameters, "10B" tokens of C4, as upstream's MEAP-Pretain/pretrained/meap_0.5b_10b.py ran it.

Mask ratio 0.15, 10000 steps of 256 x 4096 tokens = 10.5B tokens (not 10B), warmup 1000 steps.
Eval and save intervals as that script sets them (eval_step_interval, save_step_interval).
"""

base = "_base.py"
model_name = "tiny_LLaMA_0.5b_mask"
max_steps = 10_000
eval_interval = 500
save_interval = 5000
out_dir = "out/meap_0.5b_10b_mask0.15"
