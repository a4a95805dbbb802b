"""TinyLlama 1.1B (next-token prediction) on TinyLlama's own data mix: SlimPajama and StarCoder.

The weights are those of TinyLlama's pretrain/tinyllama.py (jzhang38/TinyLlama),
`train_data_config = [("train_slim", 0.693584), ("train_star", 0.306416)]`, as are its training
values: global batch 512 x 2048 tokens, micro batch 8, lr 4e-4 to 4e-5, 2000 warmup steps, weight
decay 0.1, 715256 * 2 steps, eval and save every 5000 steps, eval_iters 100. Prepare both corpora
into one folder, each under its prefix (docs/DATA.md), e.g.:

    meap-prepare --source_path SlimPajama-627B --train_pattern 'train/*/*.jsonl.zst' \
        --val_pattern 'validation/*/*.jsonl.zst' --train_prefix slim --val_prefix validation \
        --destination_path data/slim_star_bin --tokenizer_dir tokenizer
    meap-prepare --source_path starcoderdata --train_pattern '*.parquet' --text_key content \
        --train_prefix star --val_prefix heldout_star --split train \
        --destination_path data/slim_star_bin --tokenizer_dir tokenizer
"""

base = "_base.py"
model_name = "tiny_LLaMA_1b"
# TinyLlama's shape; its 32000-row embedding has no room for the [MASK] id (32000) every tokenizer
# folder gets here, so the vocabulary is sized to the tokenizer (32001, padded to 32064).
vocab_from_tokenizer = True
mask_ratio = 0.0
train_data_dir = "data/slim_star_bin"
train_prefix = "slim:0.693584,star:0.306416"
val_prefix = "validation"
global_batch_size = 512
micro_batch_size = 8
max_steps = 1_430_512
warmup_steps = 2000
weight_decay = 0.1
eval_interval = 5000
save_interval = 5000
out_dir = "out/tinyllama_slimpajama_starcoder"
