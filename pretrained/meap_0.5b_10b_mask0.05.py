"""MEAP-0.5B with mask ratio 0.05 (the paper's mask-ratio ablation): upstream's
MEAP-Pretain/pretrained/meap_0.5b_10b_0.05.py, 10000 steps = 10.5B tokens, eval every 500 and save
every 5000 steps, as meap_0.5b_10b.py.
"""

base = "meap_0.5b_10b.py"
mask_ratio = 0.05
out_dir = "out/meap_0.5b_10b_mask0.05"
