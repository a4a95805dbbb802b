"""What the evaluation entry points share: argument parsing that fails in one line, and output files."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path
from dataclasses import MISSING, Field, asdict, dataclass, field, fields
from typing import Any, Callable, Iterable, Optional, Sequence, Union

from lit_gpt.cli import ArgumentParser, exit_on_user_error
from lit_gpt.errors import UserError
from lit_gpt.eval.prompts import TASKS
from lit_gpt.io.atomic import write_text


def setting(default: Any = MISSING, *, help: Optional[str] = None, type: Optional[Callable] = None,
            choices: Optional[Sequence] = None):
    """A settings field; its metadata are its flag's argparse options (False: a switch; no default: a required flag)."""
    flag = {key: value for key, value in (("help", help), ("type", type), ("choices", choices)) if value is not None}
    if default is False:
        flag["action"] = "store_true"
    elif default is MISSING:
        flag["required"] = True
    else:
        flag["default"] = default
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=flag)
    return field(default=default, metadata=flag)


DTYPES = ["auto", "bfloat16", "float16", "float32"]
BEYOND_CONTEXT_HELP = ("evaluate prompts longer than the model's positions (e.g. to measure RoPE extrapolation); "
                       "refused otherwise")


@dataclass(kw_only=True)
class ModelSettings:
    """What every evaluation takes: the model, where it runs, where results go, what they may replace or exceed."""

    model_dir: str = setting(help="Hugging Face model folder, or a lit checkpoint .pth")
    tokenizer_dir: Optional[str] = setting(None, help="tokenizer folder (default: the model's folder)")
    device: str = setting("auto", help="auto (CUDA when available), cpu, cuda, cuda:1, ...")
    dtype: str = setting("auto", choices=DTYPES)
    trust_remote_code: bool = setting(False, help="run code shipped in the model folder")
    out_dir: str = setting()
    overwrite: bool = setting(False, help="replace results already in --out_dir")
    allow_beyond_context: bool = setting(False, help=BEYOND_CONTEXT_HELP)

    def load_model(self, output_files: Iterable[str]):
        """The model, once --out_dir holds none of `output_files` (unless --overwrite); --out_dir is
        created later (`make_out_dir`), so a bad model leaves no empty folder behind."""
        from lit_gpt.eval.models import load_model

        out = Path(self.out_dir).expanduser()
        if out.exists() and not out.is_dir():
            raise UserError(f"--out_dir {out} exists and is not a folder")
        existing = [name for name in output_files if (out / name).exists()]
        if existing and not self.overwrite:
            raise UserError(f"{out} already holds {', '.join(existing)}; choose another --out_dir or pass --overwrite")
        return load_model(self.model_dir, tokenizer_dir=self.tokenizer_dir, device=self.device, dtype=self.dtype,
                          trust_remote_code=self.trust_remote_code)

    def check_positions(self, longest: int, loaded, what: str) -> None:
        """Refuses prompts the model has no positions for, before any is built or run: its answers there
        mean nothing unless extrapolation is what is measured, and long prompts can take minutes each."""
        if not loaded.max_positions or longest <= loaded.max_positions:
            return
        message = f"{what}: {longest} tokens exceed the model's {loaded.max_positions} positions"
        if not self.allow_beyond_context:
            raise UserError(f"{message}; use shorter lengths, or pass --allow_beyond_context to run them anyway")
        print(f"warning: {message} (--allow_beyond_context)", file=sys.stderr)

    def results_head(self, task: str, loaded, **settings) -> dict:
        """The start of results.json: the task, the model, these settings, what the model turned out to be."""
        return {
            "task": task,
            "model": str(Path(self.model_dir).expanduser().resolve()),
            "settings": {
                **asdict(self),
                "model_source": loaded.source,
                "device": str(loaded.device),
                "dtype": str(loaded.dtype).removeprefix("torch."),
                "max_position_embeddings": loaded.max_positions,
                **settings,
            },
        }

    def make_out_dir(self) -> Path:
        out = Path(self.out_dir).expanduser()
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"cannot create --out_dir {out}: {err.strerror or err}") from None
        return out


def add_arguments(parser: argparse.ArgumentParser, settings_fields: Iterable[Field]) -> None:
    for f in settings_fields:
        parser.add_argument(f"--{f.name}", **f.metadata)


def command(settings_type: type, run: Callable, report: Callable, module: str, doc: Optional[str]):
    """An evaluation's `main`: parses, runs (results.json records the command), reports, returns the results."""

    @exit_on_user_error
    def main(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> dict:
        argv = list(sys.argv[1:] if argv is None else argv)
        parser = ArgumentParser(prog=prog or f"python -m {module}", description=doc.split("\n\n")[0])
        add_arguments(parser, fields(settings_type))
        settings = settings_type(**vars(parser.parse_args(argv)))
        results = run(settings, command=shlex.join(["python", "-m", module, *argv]))
        report(settings, results)
        return results

    return main


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """The model flags alone, for scripts that write no results."""
    model_flags = [f for f in fields(ModelSettings) if f.name not in ("out_dir", "overwrite", "allow_beyond_context")]
    add_arguments(parser, model_flags)
    parser.add_argument("--batch_size", type=positive_int, default=8)


def parse_as(kind: Callable, text: str, message: str) -> Any:
    """`kind(text)`, or `message` as the flag's error when `text` is not one."""
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(message) from None


def positive_int(text: str) -> int:
    value = parse_as(int, text, f"{text!r} is not an integer")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} is not positive")
    return value


def token_count(text: str) -> int:
    """'4096', '4k' (4096) or '128K' (131072)."""
    text = text.strip()
    scale = 1024 if text[-1:] in ("k", "K") else 1
    value = parse_as(int, text[:-1] if scale > 1 else text, f"{text!r} is not a number of tokens") * scale
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of tokens")
    return value


def comma_list(item_type):
    def parse(text: str) -> list:
        items = text.split(",")
        if not text.strip() or not all(part.strip() for part in items):
            raise argparse.ArgumentTypeError(f"{text!r} has an empty item (expected a comma-separated list)")
        return [item_type(part) for part in items]

    return parse


def depth(text: str) -> float:
    value = parse_as(float, text, f"depth {text!r} is not a number")
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"depth {value:g} is outside [0, 1] (0 = start of the context, 1 = end)")
    return value


def write_json(path: Union[str, Path], data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2) + "\n", "results")


@dataclass(kw_only=True)
class PromptGridSettings(ModelSettings):
    """What the retrieval and attention evaluations share: the task's prompts over lengths x depths."""

    task: str = setting(choices=TASKS)
    context_lengths: list[int] = setting([1024, 2048, 4096], type=comma_list(token_count))
    depths: list[float] = setting([0.0, 0.25, 0.5, 0.75, 1.0], type=comma_list(depth))
    samples: int = setting(20, type=positive_int, help="prompts per length and depth")
    seed: int = setting(0, type=int, help="prompt seed (attention and retrieval build the same prompts from one seed)")
    haystack_file: Optional[str] = setting(None, help="niah: local .txt/.jsonl/.json(.gz) file or folder")

    def __post_init__(self) -> None:
        # The flags' parsers check the values (so does SamplePrompts, for library callers).
        self.context_lengths = sorted(set(self.context_lengths))
        self.depths = sorted(set(self.depths))

    def prompts(self, tokenizer) -> tuple[list, str]:
        """The grid's prompts, and where their haystack came from (for results.json)."""
        from lit_gpt.eval.haystack import task_haystack
        from lit_gpt.eval.prompts import build_prompts

        if self.task != "niah" and self.haystack_file:
            print(f"warning: --haystack_file is only used by task niah, not {self.task}", file=sys.stderr)
        corpus, haystack = task_haystack(self.task, self.context_lengths, self.haystack_file)
        lengths, depths = self.context_lengths, self.depths
        return build_prompts(tokenizer, self.task, lengths, depths, self.samples, self.seed, corpus), haystack
