"""Regenerate the embedded sample corpus (data/sample/*.json.gz, C4-shaped, rich in facts).

    python data_process/make_sample_corpus.py --out_dir data/sample --haystack lit_gpt/eval/haystack.jsonl.gz
    python data_process/train_tokenizer.py --source_path data/sample --out_dir data/tokenizer

--haystack also rewrites the needle-in-a-haystack filler that ships inside the package (the first
1M characters of the new training documents).

The defaults reproduce the committed files byte for byte (given the same wonderwords word lists).
"""

import argparse

import sys
from pathlib import Path

# tools/ lives in the repository, beside this script, not in the installed lit_gpt package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_gpt.cli import exit_on_user_error
from lit_gpt.errors import UserError
from tools.sample_corpus import make_haystack_filler, make_sample_corpus


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--train_chars", type=int, default=5_000_000, help="characters of training text")
    parser.add_argument("--val_chars", type=int, default=250_000, help="characters of validation text")
    parser.add_argument("--train_files", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--haystack", default=None, help="also write the packaged NIAH filler to this file")
    args = parser.parse_args(argv)
    if min(args.train_chars, args.val_chars, args.train_files) <= 0:
        raise UserError("--train_chars, --val_chars and --train_files must be positive")
    try:
        paths = make_sample_corpus(args.out_dir, args.train_chars, args.val_chars, args.train_files, args.seed)
        if args.haystack:
            make_haystack_filler(args.out_dir, args.haystack)
            paths.append(Path(args.haystack))
    except OSError as err:
        raise UserError(f"cannot write to {err.filename or args.out_dir}: {err.strerror or err}") from None
    for path in paths:
        print(f"{path} ({path.stat().st_size:,} bytes)")


if __name__ == "__main__":
    main()
