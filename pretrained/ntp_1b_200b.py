"""NTP baseline for meap_1b_200b: identical data order, seed and schedule, nothing masked."""

base = "meap_1b_200b.py"
mask_ratio = 0.0
out_dir = "out/ntp_1b_200b"
