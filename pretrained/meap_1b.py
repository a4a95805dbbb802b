"""MEAP, 1.1B parameters (TinyLlama shape with [MASK]), "200B" tokens of C4, as upstream's
MEAP-Pretain/pretrained/meap_1b.py ran it: mask ratio 0.15, 190,000 steps of 256 x 4096 tokens
= 199.2B tokens, warmup 19,000 steps.

The other 1B recipes derive from this one: token budgets (meap_1b_20b ... 200b), mask ratios
(meap_1b_mask0.05 ... 0.2), span masking (meap_1b_span5, meap_1b_span50) and the NTP baseline.
Eval and save intervals as that script sets them (eval_step_interval, save_step_interval).
"""

base = "_base.py"
model_name = "tiny_LLaMA_1b_mask"
max_steps = 190_000
eval_interval = 4766
save_interval = 20_000
out_dir = "out/meap_1b_mask0.15"
