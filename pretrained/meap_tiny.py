"""A tiny MEAP model that learns the embedded default corpus on a laptop CPU in a few minutes.

Prepare the corpus first (the Quickstart does):
    python data_process/prepare_c4.py --source_path data/sample --destination_path out/sample_bin \
        --tokenizer_dir data/tokenizer --chunk_size 8224
(8224 = 32 x 257: chunks a multiple of block_size + 1, small enough that little EOS padding is read.)
The vocabulary is sized to the tokenizer given, so any small tokenizer works with --tokenizer_dir.
"""

base = "_base.py"
model_name = "pico_LLaMA"
vocab_from_tokenizer = True
block_size = 256

train_data_dir = "out/sample_bin"
tokenizer_dir = "data/tokenizer"
out_dir = "out/meap_tiny"

global_batch_size = 32
micro_batch_size = 16
max_steps = 160
learning_rate = 2e-3
min_lr = 2e-4
warmup_fraction = 0.05

log_interval = 10
eval_interval = 40
eval_iters = 16
save_interval = 80
keep_last = 2
