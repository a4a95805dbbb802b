"""Convert a lit checkpoint into a Hugging Face LLaMA folder (safetensors, config, tokenizer).

    python convert/convert_lit_checkpoint.py --checkpoint_name out/step-00010000.pth \
        --out_dir hf_model [--model_name tiny_LLaMA_1b_mask] [--tokenizer_dir TOK] [--dtype bfloat16]

The folder loads with `AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`.
--model_name may be omitted when the checkpoint records its config (the trainer's do);
--tokenizer_dir defaults to the tokenizer the checkpoint records.
A sharded checkpoint (the folder `--checkpoint_format sharded` writes) is read the same way, on one
CPU process, whatever the number of processes that trained it.
"""

import argparse

from lit_gpt.cli import exit_on_user_error
from lit_gpt.convert.export import export_hf


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint_name", "--checkpoint_path", dest="checkpoint", required=True, metavar="PATH",
                        help="the .pth checkpoint (trainer checkpoint, file or sharded folder; upstream checkpoint; "
                             "or plain state dict)")
    parser.add_argument("--out_dir", required=True, help="folder to write; must be empty or absent unless --overwrite")
    parser.add_argument("--model_name", default=None, help="model shape, e.g. tiny_LLaMA_1b_mask (default: recorded in the checkpoint)")
    parser.add_argument("--tokenizer_dir", default=None, help="tokenizer folder (default: recorded in the checkpoint)")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--max_shard_size", default="5GB", help="larger models are split into shards plus an index (default 5GB)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out_dir")
    parser.add_argument("--model_only", nargs="?", const="true", default=None,
                        help="accepted for upstream compatibility; has no effect")
    return parser.parse_args(argv)


@exit_on_user_error
def main(argv=None) -> None:
    args = parse_args(argv)
    result = export_hf(args.checkpoint, args.out_dir, model_name=args.model_name, tokenizer_dir=args.tokenizer_dir,
                       dtype=args.dtype, max_shard_size=args.max_shard_size, overwrite=args.overwrite)
    print(result.summary())
    if not result.tokenizer_saved:
        print("note: no tokenizer was given or recorded in the checkpoint; pass --tokenizer_dir to include one")


if __name__ == "__main__":
    main()
