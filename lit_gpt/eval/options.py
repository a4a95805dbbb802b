"""What the evaluation entry points share: argument parsing that fails in one line, and output files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Optional, Union

from lit_gpt.errors import UserError


def add_model_arguments(parser: argparse.ArgumentParser, dtype: str = "auto", batch_size: bool = True) -> None:
    parser.add_argument("--model_dir", required=True, help="Hugging Face model folder, or a lit checkpoint .pth")
    parser.add_argument("--tokenizer_dir", default=None, help="tokenizer folder (default: the model's folder)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    parser.add_argument("--dtype", default=dtype, choices=["auto", "bfloat16", "float16", "float32"])
    if batch_size:
        parser.add_argument("--batch_size", type=positive_int, default=8)
    parser.add_argument("--trust_remote_code", action="store_true", help="run code shipped in the model folder")


BEYOND_CONTEXT_HELP = ("evaluate prompts longer than the model's positions (e.g. to measure RoPE extrapolation); "
                       "refused otherwise")


def check_positions(longest: int, max_positions: Optional[int], allow: bool, what: str) -> None:
    """Refuses prompts the model has no positions for, before any is built or run: its answers there
    mean nothing unless extrapolation is what is measured, and long prompts can take minutes each."""
    if not max_positions or longest <= max_positions:
        return
    message = f"{what}: {longest} tokens exceed the model's {max_positions} positions"
    if not allow:
        raise UserError(f"{message}; use shorter lengths, or pass --allow_beyond_context to run them anyway")
    print(f"warning: {message} (--allow_beyond_context)", file=sys.stderr)


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def token_count(text: str) -> int:
    """'4096', '4k' (4096) or '128K' (131072)."""
    text = text.strip()
    scale = 1024 if text[-1:] in ("k", "K") else 1
    try:
        value = int(text[:-1] if scale > 1 else text) * scale
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of tokens") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of tokens")
    return value


def comma_list(item_type):
    def parse(text: str) -> list:
        items = [part for part in text.split(",")]
        if not text.strip() or not all(part.strip() for part in items):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty item (expected a comma-separated list)")
        return [item_type(part) for part in items]

    return parse


def depth(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"depth {text!r} is not a number") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"depth {value:g} is outside [0, 1] (0 = start of the context, 1 = end)")
    return value


def check_out_dir(out_dir: Union[str, Path], names: Iterable[str], overwrite: bool) -> Path:
    """Refuses to replace earlier results unless `overwrite`; creates nothing (call it before the
    model loads, so a bad model leaves no empty folder behind)."""
    out = Path(out_dir).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out_dir {out} exists and is not a folder")
    existing = [name for name in names if (out / name).exists()]
    if existing and not overwrite:
        raise UserError(f"{out} already holds {', '.join(existing)}; choose another --out_dir or pass --overwrite")
    return out


def prepare_out_dir(out_dir: Union[str, Path], names: Iterable[str], overwrite: bool) -> Path:
    """Creates `out_dir`; refuses to replace earlier results unless `overwrite`."""
    out = check_out_dir(out_dir, names, overwrite)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot create --out_dir {out}: {err.strerror or err}") from None
    return out


def write_json(path: Union[str, Path], data: Any) -> Path:
    """Writes through a temporary file so an interrupted run never leaves half a results.json."""
    from lit_gpt.io.atomic import write_text

    return write_text(path, json.dumps(data, indent=2) + "\n", "results")
