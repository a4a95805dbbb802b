"""Train the small byte-level BPE tokenizer (LLaMA conventions, [MASK] included) on C4-style files.

    python data_process/train_tokenizer.py --source_path data/sample --out_dir data/tokenizer

Only training files (not c4-validation.*) are read.
"""

import argparse
from pathlib import Path

import sys

# tools/ lives in the repository, beside this script, not in the installed lit_gpt package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lit_gpt.cli import exit_on_user_error
from lit_gpt.errors import UserError
from lit_gpt.prepare.pipeline import find_sources
from tools.sample_corpus import texts_from_json_files, train_bpe_tokenizer
from lit_gpt.tokenizer import load_tokenizer, tokenizer_info


@exit_on_user_error
def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source_path", required=True, help="folder with .json.gz / .json / .jsonl files")
    parser.add_argument("--out_dir", required=True)
    parser.add_argument("--vocab_size", type=int, default=4096, help="including <unk>, <s>, </s> and [MASK]")
    args = parser.parse_args(argv)
    if args.vocab_size < 300:
        raise UserError(f"--vocab_size must be at least 300 (256 bytes + special tokens), got {args.vocab_size}")
    out_dir = Path(args.out_dir)
    sources = find_sources(Path(args.source_path), out_dir, split="train")
    try:
        train_bpe_tokenizer(texts_from_json_files([s.path for s in sources]), out_dir, args.vocab_size)
    except OSError as err:
        raise UserError(f"cannot write the tokenizer to {out_dir}: {err.strerror or err}") from None
    info = tokenizer_info(load_tokenizer(out_dir), out_dir)
    print(f"tokenizer in {out_dir}: {info}")


if __name__ == "__main__":
    main()
