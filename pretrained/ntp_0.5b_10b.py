"""NTP baseline for meap_0.5b_10b: identical data order, seed and schedule, nothing masked."""

base = "meap_0.5b_10b.py"
mask_ratio = 0.0
out_dir = "out/ntp_0.5b_10b"
