"""MEAP-1.1B with mask ratio 0.15: the default, so the same run as meap_1b.py (same out_dir, so
either name resumes it); listed for the mask-ratio ablation (upstream's meap_1b.py)."""

base = "meap_1b.py"
mask_ratio = 0.15
