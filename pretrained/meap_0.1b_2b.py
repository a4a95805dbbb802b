"""MEAP, 0.1B parameters, ~2B tokens of C4, as upstream's MEAP-Pretain/pretrained/meap_0.1b_2b.py ran it.

That script trains at mask ratio 0.1 (its output folder name says 0.15) for 1907 steps of
256 x 4096 tokens = 2.0B tokens, warmup 190 steps, micro batch 16. Add `--mask_scheme upstream`
for its exact masks.
Eval and save intervals as that script sets them (eval_step_interval, save_step_interval).
"""

base = "_base.py"
model_name = "tiny_LLaMA_0.1b_mask"
mask_ratio = 0.1
max_steps = 1907
micro_batch_size = 16
eval_interval = 600
save_interval = 1900
out_dir = "out/meap_0.1b_2b_mask0.1"
