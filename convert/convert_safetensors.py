"""Rewrite Hugging Face `pytorch_model.bin` weights as safetensors (for upstream MEAP users).

    python convert/convert_safetensors.py --checkpoint_path hf_model/pytorch_model.bin --out_dir hf_model_st

config.json, generation_config.json and tokenizer files next to the .bin are copied along.
The .bin is read through lit_gpt.safe_load (any pickle protocol, including the protocol 5 that upstream's
converter writes): only tensors and plain containers load, so it cannot run code. New exports need no extra step:
convert_lit_checkpoint.py writes safetensors directly.
"""

import argparse

from lit_gpt.cli import ArgumentParser, exit_on_user_error
from lit_gpt.convert.export import bin_to_safetensors


def parse_args(argv=None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint_path", required=True, help="pytorch_model.bin, or a folder with its shards and index")
    parser.add_argument("--out_dir", required=True, help="folder to write; must be empty or absent unless --overwrite")
    parser.add_argument("--dtype", default=None, choices=("bfloat16", "float16", "float32"), help="default: keep the stored dtype")
    parser.add_argument("--max_shard_size", default="5GB")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out_dir")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None) -> None:
    args = parse_args(argv)
    result = bin_to_safetensors(args.checkpoint_path, args.out_dir, dtype=args.dtype,
                                max_shard_size=args.max_shard_size, overwrite=args.overwrite)
    print(result.summary())


if __name__ == "__main__":
    main()
