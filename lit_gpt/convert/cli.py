"""`meap-convert lit-to-hf | hf-to-lit | safetensors`, and the scripts in convert/ (one direction each)."""

from __future__ import annotations

import argparse
from typing import Callable, Optional, Sequence

from lit_gpt.cli import ArgumentParser, exit_on_user_error, run_subcommand

LIT_TO_HF = """Convert a lit checkpoint into a Hugging Face LLaMA folder (safetensors, config, tokenizer).

    convert_lit_checkpoint.py --checkpoint_name out/step-00010000.pth \\
        --out_dir hf_model [--model_name tiny_LLaMA_1b_mask] [--tokenizer_dir TOK] [--dtype bfloat16]

The folder loads with `AutoModelForCausalLM.from_pretrained(DIR)` and `AutoTokenizer.from_pretrained(DIR)`.
--model_name may be omitted when the checkpoint records its config (the trainer's do);
--tokenizer_dir defaults to the tokenizer the checkpoint records.
A sharded checkpoint (the folder `--checkpoint_format sharded` writes) is read the same way, on one
CPU process, whatever the number of processes that trained it.
"""

HF_TO_LIT = """Import a Hugging Face LLaMA folder (e.g. TinyLlama) as a lit checkpoint to MEAP-pretrain from.

    convert_hf_checkpoint.py --checkpoint_dir TinyLlama-1.1B --model_name tiny_LLaMA_1b \\
        --out checkpoints/tinyllama.pth

When the vocabulary must grow (for `[MASK]`, or to the named model's padded size), the new
embedding and output rows are the mean of the existing ones. Start training from the result with
the trainer's --init_from option.
"""

SAFETENSORS = """Rewrite Hugging Face `pytorch_model.bin` weights as safetensors (for upstream MEAP users).

    convert_safetensors.py --checkpoint_path hf_model/pytorch_model.bin --out_dir hf_model_st

config.json, generation_config.json and tokenizer files next to the .bin are copied along.
The .bin is read through lit_gpt.io.safe_load (any pickle protocol, including the protocol 5 that upstream's
converter writes): only tensors and plain containers load, so it cannot run code. New exports need no extra step:
the lit-to-hf conversion writes safetensors directly.
"""


def _parser(doc: str, prog: Optional[str]) -> argparse.ArgumentParser:
    if prog:  # the examples name the command the user typed (meap-convert SUB, or the script)
        for script in ("convert_lit_checkpoint.py", "convert_hf_checkpoint.py", "convert_safetensors.py"):
            doc = doc.replace(script, prog)
    return ArgumentParser(prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


@exit_on_user_error
def lit_to_hf_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    from lit_gpt.convert.export import export_hf

    parser = _parser(LIT_TO_HF, prog)
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
    args = parser.parse_args(argv)
    result = export_hf(args.checkpoint, args.out_dir, model_name=args.model_name, tokenizer_dir=args.tokenizer_dir,
                       dtype=args.dtype, max_shard_size=args.max_shard_size, overwrite=args.overwrite)
    print(result.summary())
    if not result.tokenizer_saved:
        print("note: no tokenizer was given or recorded in the checkpoint; pass --tokenizer_dir to include one")


@exit_on_user_error
def hf_to_lit_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    from lit_gpt.convert.export import import_hf

    parser = _parser(HF_TO_LIT, prog)
    parser.add_argument("--checkpoint_dir", required=True, help="Hugging Face folder: config.json + safetensors or pytorch_model.bin")
    parser.add_argument("--model_name", default=None,
                        help="the lit shape the weights have, e.g. tiny_LLaMA_1b (default: the shape config.json describes)")
    parser.add_argument("--out", required=True, help="the .pth file to write")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    r = import_hf(args.checkpoint_dir, args.out, model_name=args.model_name, overwrite=args.overwrite)
    grown = f", {r['vocab_rows_added']} vocabulary rows added (mean-initialised)" if r["vocab_rows_added"] else ""
    print(f"wrote {r['out']}: {r['model_name']}, {r['n_params'] / 1e6:.1f}M parameters, {r['dtype']}{grown}, {r['seconds']:.1f} s")


@exit_on_user_error
def safetensors_main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> None:
    from lit_gpt.convert.export import bin_to_safetensors

    parser = _parser(SAFETENSORS, prog)
    parser.add_argument("--checkpoint_path", required=True, help="pytorch_model.bin, or a folder with its shards and index")
    parser.add_argument("--out_dir", required=True, help="folder to write; must be empty or absent unless --overwrite")
    parser.add_argument("--dtype", default=None, choices=("bfloat16", "float16", "float32"), help="default: keep the stored dtype")
    parser.add_argument("--max_shard_size", default="5GB")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out_dir")
    args = parser.parse_args(argv)
    result = bin_to_safetensors(args.checkpoint_path, args.out_dir, dtype=args.dtype,
                                max_shard_size=args.max_shard_size, overwrite=args.overwrite)
    print(result.summary())


# subcommand -> (entry function, one-line summary)
SUBCOMMANDS: dict[str, tuple[Callable[..., None], str]] = {
    "lit-to-hf": (lit_to_hf_main, "a lit checkpoint -> a Hugging Face folder (safetensors, config, tokenizer)"),
    "hf-to-lit": (hf_to_lit_main, "a Hugging Face LLaMA folder -> a lit checkpoint for --init_from"),
    "safetensors": (safetensors_main, "Hugging Face pytorch_model.bin -> safetensors"),
}


@exit_on_user_error
def main(argv: Optional[Sequence[str]] = None) -> int:
    """`meap-convert CONVERSION [options]`."""
    return run_subcommand("meap-convert", "conversion", SUBCOMMANDS, argv)
