"""NTP baseline for meap_tiny: identical data order, seed and schedule, nothing masked."""

base = "meap_tiny.py"
mask_ratio = 0.0
out_dir = "out/ntp_tiny"
