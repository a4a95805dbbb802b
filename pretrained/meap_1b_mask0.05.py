"""MEAP-1.1B with mask ratio 0.05 (the paper's mask-ratio ablation): upstream's MEAP-Pretain/pretrained/meap_1b_0.05.py,
190,000 steps = 199.2B tokens."""

base = "meap_1b.py"
mask_ratio = 0.05
out_dir = "out/meap_1b_mask0.05"
