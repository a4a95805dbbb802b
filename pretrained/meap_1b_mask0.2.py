"""MEAP-1.1B with mask ratio 0.2 (the paper's mask-ratio ablation): upstream's MEAP-Pretain/pretrained/meap_1b_0.2.py,
190,000 steps = 199.2B tokens. That script names the model "meap_1b_mask", which its config does not
define; the shape is tiny_LLaMA_1b_mask, as in its sibling scripts."""

base = "meap_1b.py"
mask_ratio = 0.2
out_dir = "out/meap_1b_mask0.2"
