"""MEAP, 0.3B parameters, ~5B tokens of C4, as upstream's MEAP-Pretain/pretrained/meap_0.3b_5b.py ran it.

Mask ratio 0.15, 4768 steps of 256 x 4096 tokens = 5.0B tokens, warmup 476 steps, micro batch 16.
Eval and save intervals as that script sets them (eval_step_interval, save_step_interval).
"""

base = "_base.py"
model_name = "tiny_LLaMA_300M_mask"
max_steps = 4768
micro_batch_size = 16
eval_interval = 4766
save_interval = 4766
out_dir = "out/meap_0.3b_5b_mask0.15"
