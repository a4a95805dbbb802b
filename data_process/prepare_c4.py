"""Tokenize C4 or another corpus (JSON lines, Parquet, Arrow) into packed token chunks (`meap-prepare` after `pip install -e .`).

    python data_process/prepare_c4.py --source_path original_data --destination_path data/c4_bin \
        --tokenizer_dir path/to/llama-tokenizer

Train shards (c4-train.*) become `c4_*.bin`, validation shards (c4-validation.*) `validation_*.bin`.
Each document is written as the tokenizer's ids followed by EOS; with a sentencepiece tokenizer.model
in --tokenizer_dir, as upstream: BOS + the sentencepiece library's ids + EOS. Re-running skips the
source files that destination/manifest.json records as done. `--help` lists the formats and
the options for other corpora (--text_key, --train_pattern, --val_pattern, --num_shards).
"""

from lit_gpt.prepare.cli import main, parse_args  # noqa: F401  (parse_args: for scripts that import it)

if __name__ == "__main__":
    main()
