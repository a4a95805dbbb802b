"""NTP baseline for meap_0.1b_2b: identical data order, seed and schedule, nothing masked."""

base = "meap_0.1b_2b.py"
mask_ratio = 0.0
out_dir = "out/ntp_0.1b_2b"
