"""MEAP-0.1B with mask ratio 0.05 (the paper's mask-ratio ablation): upstream's
MEAP-Pretain/pretrained/meap_0.1b_2b_0.05.py, 1907 steps = 2.0B tokens, eval every 600 and save every
1900 steps, as meap_0.1b_2b.py.
"""

base = "meap_0.1b_2b.py"
mask_ratio = 0.05
out_dir = "out/meap_0.1b_2b_mask0.05"
