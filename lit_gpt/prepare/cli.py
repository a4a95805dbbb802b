"""`meap-prepare` / data_process/prepare_c4.py: C4 (.json.gz / .json / .jsonl) -> packed token chunks.

    meap-prepare --source_path original_data --destination_path data/c4_bin \\
        --tokenizer_dir path/to/llama-tokenizer

Train shards (c4-train.*) become `c4_*.bin`, validation shards (c4-validation.*) `validation_*.bin`.
Each document is written as the tokenizer's ids followed by EOS; with a sentencepiece tokenizer.model
in --tokenizer_dir: BOS + the sentencepiece library's ids + EOS. `--encoding upstream` writes
upstream's ids exactly: AutoTokenizer.from_pretrained(dir, legacy=False).encode(text) + EOS.
Re-running skips the source files that destination/manifest.json records as done.
"""

from __future__ import annotations

import argparse
from typing import Optional, Sequence

from lit_gpt.cli import ArgumentParser, exit_on_user_error


def parse_args(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> argparse.Namespace:
    from lit_gpt.prepare.pipeline import DEFAULT_CHUNK_SIZE
    from lit_gpt.prepare.token_encoding import ENCODINGS

    parser = ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source_path", required=True, help="folder with C4 files, searched recursively (hidden folders and the destination left "
                             "out; a file name in two subfolders is an error), or one file")
    parser.add_argument("--destination_path", required=True, help="folder for the chunk files and manifest.json")
    parser.add_argument("--tokenizer_dir", "--checkpoint_dir", dest="tokenizer_dir", required=True,
                        help="folder with tokenizer.json or tokenizer.model; [MASK] is added when missing")
    parser.add_argument("--split", choices=("all", "train", "validation"), default="all")
    parser.add_argument("--chunk_size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help="tokens per chunk file; a multiple of block_size + 1 wastes nothing "
                             "(default 4097*1024, upstream's, for block_size 4096)")
    parser.add_argument("--num_workers", type=int, default=None, help="processes (default: all cores)")
    parser.add_argument("--strict", action="store_true", help="a malformed line is an error instead of a warning")
    parser.add_argument("--encoding", choices=ENCODINGS, default="default",
                        help="default: the sentencepiece library's ids for a tokenizer.model, else the tokenizer's; "
                             "upstream: upstream's prepare call, AutoTokenizer(dir, legacy=False).encode(text), which "
                             "differs for text starting with spaces and after a special token written in text "
                             "(docs/UPSTREAM.md)")
    parser.add_argument("--parse_special_tokens", action=argparse.BooleanOptionalAction, default=None,
                        help="turn the tokenizer's special tokens written in text (<s>, </s>, <unk>) into their ids, "
                             "as upstream's prepare did (default: yes with --encoding upstream, no otherwise, where "
                             "they are encoded as plain text). [MASK] is always text")
    parser.add_argument("--train_prefix", default="c4")
    parser.add_argument("--val_prefix", default="validation")
    args = parser.parse_args(argv)
    if args.parse_special_tokens is None:  # upstream's encode parsed them; ours keeps them text
        args.parse_special_tokens = args.encoding == "upstream"
    return args


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    from lit_gpt.prepare.pipeline import prepare

    args = parse_args(argv, prog)
    summary = prepare(
        args.source_path,
        args.destination_path,
        args.tokenizer_dir,
        split=args.split,
        chunk_size=args.chunk_size,
        num_workers=args.num_workers,
        strict=args.strict,
        train_prefix=args.train_prefix,
        val_prefix=args.val_prefix,
        parse_special_tokens=args.parse_special_tokens,
        encoding=args.encoding,
    )
    print(summary.line(args.destination_path))
