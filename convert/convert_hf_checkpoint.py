"""Import a Hugging Face LLaMA folder (e.g. TinyLlama) as a lit checkpoint to MEAP-pretrain from.

    python convert/convert_hf_checkpoint.py --checkpoint_dir TinyLlama-1.1B --model_name tiny_LLaMA_1b \
        --out checkpoints/tinyllama.pth

When the vocabulary must grow (for `[MASK]`, or to the named model's padded size), the new
embedding and output rows are the mean of the existing ones. Start training from the result with
the trainer's --init_from option.
"""

import argparse

from lit_gpt.cli import ArgumentParser, exit_on_user_error
from lit_gpt.convert.export import import_hf


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint_dir", required=True, help="Hugging Face folder: config.json + safetensors or pytorch_model.bin")
    parser.add_argument("--model_name", default=None,
                        help="the lit shape the weights have, e.g. tiny_LLaMA_1b (default: the shape config.json describes)")
    parser.add_argument("--out", required=True, help="the .pth file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None) -> None:
    args = parse_args(argv)
    r = import_hf(args.checkpoint_dir, args.out, model_name=args.model_name, overwrite=args.overwrite)
    grown = f", {r['vocab_rows_added']} vocabulary rows added (mean-initialised)" if r["vocab_rows_added"] else ""
    print(f"wrote {r['out']}: {r['model_name']}, {r['n_params'] / 1e6:.1f}M parameters, {r['dtype']}{grown}, {r['seconds']:.1f} s")


if __name__ == "__main__":
    main()
