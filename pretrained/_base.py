"""Shared by every recipe: the upstream MEAP / TinyLlama training setup (AdamW, cosine schedule, 1M-token batches).

Recipes hold data only. A recipe starts from the file named by `base` (relative to this folder)
and replaces the settings it assigns; `python MEAP-Pretrain/pretrain.py --help` explains each one.
Relative paths are relative to the directory the trainer runs in (scripts/run_one_node.sh runs
from the repository root).

The paper recipes follow the upstream scripts (scitix/MEAP, MEAP-Pretain/pretrained/*.py): their
step counts, mask ratios and micro batches, cited in each docstring. Masks are drawn per sequence
(`mask_scheme`, README "Differences from the upstream code"); add `--mask_scheme upstream` for the
upstream code's exact masks.
"""

# C4 prepared by data_process/prepare_c4.py with the LLaMA-2 tokenizer (+ [MASK] = id 32000).
train_data_dir = "data/c4_bin"
train_prefix = "c4"
val_prefix = "validation"
tokenizer_dir = "tokenizer"

mask_ratio = 0.15

# 256 sequences x 4096 tokens = 1M tokens per optimizer step.
global_batch_size = 256
micro_batch_size = 8

learning_rate = 4e-4
min_lr = 4e-5
warmup_fraction = 0.1
weight_decay = 0.05
beta1 = 0.9
beta2 = 0.95
grad_clip = 1.0
seed = 3407

log_interval = 10
eval_interval = 1000
eval_iters = 100
save_interval = 1000
keep_last = 3
