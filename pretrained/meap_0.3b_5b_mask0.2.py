"""MEAP-0.3B with mask ratio 0.2 (the paper's mask-ratio ablation): upstream's
MEAP-Pretain/pretrained/meap_0.3b_5b_0.2.py, 4768 steps = 5.0B tokens, eval and save every 4766 steps,
as meap_0.3b_5b.py.
"""

base = "meap_0.3b_5b.py"
mask_ratio = 0.2
out_dir = "out/meap_0.3b_5b_mask0.2"
