"""MEAP-0.1B with mask ratio 0.1: upstream's MEAP-Pretain/pretrained/meap_0.1b_2b_0.1.py.

Its training is that of meap_0.1b_2b.py (which also trains at 0.1); it differs only in validating
every 1900 steps instead of every 600 (and in its output folder).
"""

base = "meap_0.1b_2b.py"
mask_ratio = 0.1
eval_interval = 1900
out_dir = "out/meap_0.1b_2b_mask0.1_eval1900"
