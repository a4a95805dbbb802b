"""MEAP-1.1B masking contiguous spans of 5 tokens (the paper's span ablation), same ratio 0.15.
The upstream code has no span masking and no script for this run; budget and schedule as meap_1b.py."""

base = "meap_1b.py"
mask_span = 5
out_dir = "out/meap_1b_span5_mask0.15"
