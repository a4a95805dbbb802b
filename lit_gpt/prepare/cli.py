"""`meap-prepare` / data_process/prepare_c4.py: text corpora -> packed token chunks.

    meap-prepare --source_path original_data --destination_path data/c4_bin \\
        --tokenizer_dir path/to/llama-tokenizer

Reads JSON lines (.json, .jsonl, each also .gz or .zst), Parquet (.parquet) and Arrow (.arrow,
and datasets.save_to_disk folders), the text in --text_key. Files matching --train_pattern
(default c4-train.*) become `{train_prefix}_*.bin` (c4_*.bin), those matching --val_pattern
(c4-validation.*) `{val_prefix}_*.bin`; other files are reported and not read. Each document is
written as the tokenizer's ids followed by EOS; with a sentencepiece tokenizer.model in
--tokenizer_dir, as upstream: BOS + the sentencepiece library's ids + EOS. Re-running skips the
source files that destination/manifest.json records as done. `--encoding upstream` writes
upstream's ids exactly: AutoTokenizer.from_pretrained(dir, legacy=False).encode(text) + EOS. Several corpora share one
destination under their own prefixes; --num_shards/--shard_index split one corpus over machines.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from lit_gpt.cli import ArgumentParser, exit_on_user_error
from lit_gpt.errors import UserError


def parse_args(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> argparse.Namespace:
    from lit_gpt.prepare.pipeline import DEFAULT_CHUNK_SIZE, DEFAULT_PATTERNS
    from lit_gpt.prepare.token_encoding import ENCODINGS

    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source_path", help="folder with the source files, searched recursively (hidden folders "
                        "and the destination left out), or one file")
    parser.add_argument("--destination_path", required=True, help="folder for the chunk files and manifest.json")
    parser.add_argument("--tokenizer_dir", "--checkpoint_dir", dest="tokenizer_dir",
                        help="folder with tokenizer.json or tokenizer.model; [MASK] is added when missing")
    parser.add_argument("--split", choices=("all", "train", "validation"), default="all")
    parser.add_argument("--text_key", default="text",
                        help="the JSON field or Parquet/Arrow column holding the text (StarCoder: content)")
    parser.add_argument("--train_pattern", default=DEFAULT_PATTERNS["train"],
                        help="glob(s), comma-separated, selecting the training files: by file name, or by the path "
                             "below --source_path when the pattern holds '/' (e.g. 'train/*/*.jsonl.zst')")
    parser.add_argument("--val_pattern", default=DEFAULT_PATTERNS["validation"],
                        help="glob(s) selecting the validation files, as --train_pattern")
    parser.add_argument("--chunk_size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help="tokens per chunk file; a multiple of block_size + 1 wastes nothing "
                             "(default 4097*1024, upstream's, for block_size 4096)")
    parser.add_argument("--num_workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--strict", action="store_true", help="a malformed record is an error instead of a warning")
    parser.add_argument("--encoding", choices=ENCODINGS, default="default",
                        help="default: the sentencepiece library's ids for a tokenizer.model, else the tokenizer's; "
                             "upstream: upstream's prepare call, AutoTokenizer(dir, legacy=False).encode(text), which "
                             "differs for text starting with spaces and after a special token written in text "
                             "(docs/UPSTREAM.md)")
    parser.add_argument("--parse_special_tokens", action=argparse.BooleanOptionalAction, default=None,
                        help="turn the tokenizer's special tokens written in text (<s>, </s>, <unk>) into their ids, "
                             "as upstream's prepare did (default: yes with --encoding upstream, no otherwise, where "
                             "they are encoded as plain text). [MASK] is always text")
    parser.add_argument("--train_prefix", default="c4", help="chunk file prefix of the training files")
    parser.add_argument("--val_prefix", default="validation", help="chunk file prefix of the validation files")
    parser.add_argument("--num_shards", type=int, default=1,
                        help="split the files over this many machines or jobs (e.g. a SLURM array) writing one "
                             "destination; each prepares every N-th file")
    parser.add_argument("--shard_index", type=int, default=0, help="this job's shard, 0 .. num_shards-1")
    parser.add_argument("--merge", action="store_true",
                        help="only merge the shards' records into manifest.json (each shard does it when it ends; "
                             "for file systems without working locks)")
    args = parser.parse_args(argv)
    if args.parse_special_tokens is None:  # upstream's encode parsed them; ours keeps them text
        args.parse_special_tokens = args.encoding == "upstream"
    if not args.merge:
        for option in ("source_path", "tokenizer_dir"):
            if getattr(args, option) is None:
                raise UserError(f"--{option} is required (unless --merge)")
    return args


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    from lit_gpt.prepare.pipeline import merge, prepare

    args = parse_args(argv, prog)
    if args.merge:
        print(merge(args.destination_path))
        return
    # Every option but --merge is an argument of prepare() of the same name.
    summary = prepare(**{k: v for k, v in vars(args).items() if k != "merge"})
    print(summary.line(args.destination_path))
