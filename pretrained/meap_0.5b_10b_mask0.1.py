"""MEAP-0.5B with mask ratio 0.1 (the paper's mask-ratio ablation): upstream's
MEAP-Pretain/pretrained/meap_0.5b_10b_0.1.py, 10000 steps = 10.5B tokens, eval every 500 and save
every 5000 steps, as meap_0.5b_10b.py.

That script also reads its data with `n_chunks=8` (TinyLlama's PackedDataset shuffle buffer of 8
chunk files instead of 1). The project's loader draws sequences from a seeded permutation of all
chunks, so it has no such buffer: this setting has no counterpart (docs/UPSTREAM.md, "Data order").
"""

base = "meap_0.5b_10b.py"
mask_ratio = 0.1
out_dir = "out/meap_0.5b_10b_mask0.1"
