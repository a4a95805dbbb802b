"""Run recipes (`pretrained/*.py`) and the command line that overrides them.

A recipe is a Python file holding data only: module-level assignments of `PretrainArgs` fields,
and optionally `base = "other_recipe.py"` (a path relative to the recipe's own folder) whose
values it starts from. Dict values (`model_overrides`) are merged with the base's; everything else
replaces it. Precedence: PretrainArgs defaults < base recipe(s) < recipe < command line.

    base = "meap_1b.py"
    mask_ratio = 0.05
    out_dir = "out/meap_1b_mask0.05"
"""

from __future__ import annotations

import argparse
import difflib
import importlib.util
import json
import types
from pathlib import Path
from typing import Any, Optional, Sequence

from lit_gpt.cli import ArgumentParser, UserError
from lit_gpt.pretrain.args import SETTINGS, PretrainArgs, validate_args

BASE_KEY = "base"
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NONE = {"none", "null"}


def _unknown_key_message(key: str, where: str) -> str:
    close = difflib.get_close_matches(key, SETTINGS, n=3, cutoff=0.6)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return f"{where}: unknown setting {key!r}{hint}; `pretrain.py --help` lists them all"


def _field_type(name: str) -> tuple[str, bool]:
    """('int' | 'float' | 'str' | 'bool' | 'dict', nullable) of a PretrainArgs field."""
    annotation = str(SETTINGS[name].type)
    if annotation.startswith("Optional["):
        return annotation[len("Optional[") : -1], True
    return annotation, False


def coerce_value(name: str, value: Any, where: str) -> Any:
    """Checks (recipe values) or parses (command-line strings) one setting's value."""
    kind, nullable = _field_type(name)
    from_cli = isinstance(value, str) and kind != "str"
    if isinstance(value, str) and nullable and value.strip().lower() in _NONE:
        return None
    if value is None:
        if nullable:
            return None
        raise UserError(f"{where}: {name} cannot be None")
    try:
        if kind == "bool":
            if isinstance(value, bool):
                return value
            if from_cli and value.strip().lower() in _TRUE | _FALSE:
                return value.strip().lower() in _TRUE
            raise ValueError("expected true or false")
        if kind == "int":
            if isinstance(value, bool):
                raise ValueError("expected an integer")
            if from_cli:
                number = float(value.replace("_", "")) if any(c in value for c in "eE.") else int(value.replace("_", ""))
                value = number
            if isinstance(value, float) and value.is_integer():
                value = int(value)  # 2e9 tokens
            if not isinstance(value, int):
                raise ValueError("expected an integer")
            return value
        if kind == "float":
            if isinstance(value, bool):
                raise ValueError("expected a number")
            value = float(value) if from_cli else value
            if not isinstance(value, (int, float)):
                raise ValueError("expected a number")
            return float(value)
        if kind == "dict":
            value = json.loads(value) if isinstance(value, str) else value
            if not isinstance(value, dict):
                raise ValueError("expected a dict (JSON object on the command line)")
            return value
        if not isinstance(value, str):
            raise ValueError("expected a string")
        return value
    except (ValueError, json.JSONDecodeError) as err:
        raise UserError(f"{where}: {name}={value!r}: {err}") from None


def _merge(into: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    out = dict(into)
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def load_recipe(path: str | Path, _seen: Optional[tuple[Path, ...]] = None) -> dict[str, Any]:
    """The settings a recipe file makes (its bases' included), checked against PretrainArgs."""
    path = Path(path).expanduser()
    seen = _seen or ()
    if not path.is_file():
        raise UserError(f"recipe not found: {path}")
    resolved = path.resolve()
    if resolved in seen:
        raise UserError(f"recipe {path}: circular base chain {' -> '.join(str(p) for p in (*seen, resolved))}")
    spec = importlib.util.spec_from_file_location(f"_meap_recipe_{resolved.stem.replace('.', '_')}", resolved)
    if spec is None or spec.loader is None:
        raise UserError(f"cannot load recipe {path}: not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:  # the user's file: report any failure as one line naming it
        raise UserError(f"cannot load recipe {path}: {type(err).__name__}: {err}") from None

    values: dict[str, Any] = {}
    for key, value in vars(module).items():
        if key.startswith("_"):
            continue
        if isinstance(value, (types.ModuleType, types.FunctionType, type)):
            raise UserError(f"recipe {path}: {key!r} is a {type(value).__name__}; recipes hold data only")
        if key == BASE_KEY:
            continue
        if key not in SETTINGS:
            raise UserError(_unknown_key_message(key, f"recipe {path}"))
        values[key] = coerce_value(key, value, f"recipe {path}")

    base = vars(module).get(BASE_KEY)
    if base is None:
        return values
    if not isinstance(base, str):
        raise UserError(f"recipe {path}: base must be a file name, got {base!r}")
    return _merge(load_recipe(resolved.parent / base, (*seen, resolved)), values)


def build_parser(defaults: dict[str, Any], prog: Optional[str] = None) -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog=prog,
        description="MEAP pretraining with Lightning Fabric. Settings come from the defaults below, "
        "then the --config recipe, then the command line.",
        allow_abbrev=False,
    )
    parser.add_argument("--config", metavar="RECIPE", help="recipe file, e.g. pretrained/meap_1b.py")
    groups: dict[str, argparse._ArgumentGroup] = {}
    for name, spec in SETTINGS.items():
        group_name = spec.metadata["group"]
        if group_name not in groups:
            groups[group_name] = parser.add_argument_group(group_name)
        kind, _ = _field_type(name)
        shown = json.dumps(defaults[name]) if kind == "dict" else defaults[name]
        text = spec.metadata["help"]
        if not (shown is None and "default:" in text):
            text += f" (default: {shown})"
        groups[group_name].add_argument(
            f"--{name}",
            metavar=kind.upper(),
            default=None,
            help=text.replace("%", "%%"),
        )
    return parser


def parse_args(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> PretrainArgs:
    """PretrainArgs from `--config RECIPE` and `--key value` overrides; validated."""
    pre = ArgumentParser(add_help=False, allow_abbrev=False)
    pre.add_argument("--config")
    known, _ = pre.parse_known_args(argv)
    recipe = load_recipe(known.config) if known.config else {}
    defaults = _merge(PretrainArgs().to_dict(), recipe)
    namespace = build_parser(defaults, prog).parse_args(argv)
    overrides = {
        name: coerce_value(name, value, f"--{name}")
        for name, value in vars(namespace).items()
        if name != "config" and value is not None
    }
    args = PretrainArgs(**_merge(defaults, overrides))
    validate_args(args)
    return args
