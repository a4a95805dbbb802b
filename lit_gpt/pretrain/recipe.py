"""Run recipes (`pretrained/*.py`) and the command line that overrides them.

A recipe is a Python file holding data only: module-level assignments of `PretrainArgs` fields,
and optionally `base = "other_recipe.py"` (a path relative to the recipe's own folder) whose
values it starts from. It is parsed with `ast`, never run: values are literals (numbers, strings,
True/False/None, lists/tuples/dicts of them) and + - * / ** between numbers (`256 * 4096`);
imports, calls, names and anything else are refused with the file and line. Dict values
(`model_overrides`) are merged with the base's; everything else replaces it. Precedence: PretrainArgs defaults < base recipe(s) < recipe < command line.

    base = "meap_1b.py"
    mask_ratio = 0.05
    out_dir = "out/meap_1b_mask0.05"
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import math
import operator
from pathlib import Path
from typing import Any, Optional, Sequence

from lit_gpt.cli import ArgumentParser
from lit_gpt.errors import UserError
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
    """The settings a recipe file makes (its bases' included), checked against PretrainArgs.

    The file is parsed, never run: see `read_recipe_values`.
    """
    path = Path(path).expanduser()
    seen = _seen or ()
    if not path.is_file():
        raise UserError(f"recipe not found: {path}")
    resolved = path.resolve()
    if resolved in seen:
        raise UserError(f"recipe {path}: circular base chain {' -> '.join(str(p) for p in (*seen, resolved))}")
    try:
        source = resolved.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read recipe {path}: {err}") from None
    if resolved.suffix in (".yaml", ".yml"):  # a run's hyperparameters.yaml: the same settings as data
        assigned = _read_yaml_settings(source, str(path))
    else:
        assigned = read_recipe_values(source, str(path))

    values: dict[str, Any] = {}
    for key, value in assigned.items():
        if key == BASE_KEY:
            continue
        if key not in SETTINGS:
            raise UserError(_unknown_key_message(key, f"recipe {path}"))
        values[key] = coerce_value(key, value, f"recipe {path}")

    base = assigned.get(BASE_KEY)
    if base is None:
        return values
    if not isinstance(base, str):
        raise UserError(f"recipe {path}: base must be a file name, got {base!r}")
    return _merge(load_recipe(resolved.parent / base, (*seen, resolved)), values)


def _read_yaml_settings(source: str, where: str) -> dict[str, Any]:
    import yaml

    try:
        values = yaml.safe_load(source)
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        raise UserError(f"recipe {where}{f':{line + 1}' if line is not None else ''}: not valid YAML") from None
    if not isinstance(values, dict):
        raise UserError(f"recipe {where}: expected a mapping of settings")
    return values


# Recipes are data: literals, containers of literals, and arithmetic on numbers (`256 * 4096`,
# `20e9`, `-1`). Anything that could run code (imports, calls, names, attributes, comprehensions,
# f-strings, lambdas) is refused before any of the file is evaluated.
_ARITHMETIC = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
               ast.Pow: operator.pow}
_MAX_DIGITS = 400  # keeps `10 ** 10 ** 10` from hanging the parser


def read_recipe_values(source: str, where: str) -> dict[str, Any]:
    """{name: value} of a recipe's top-level `name = literal` assignments, in file order.

    Allowed: a module docstring; assignments to one plain name of numbers, strings, True/False/None,
    lists/tuples/dicts of those, unary minus/plus, and + - * / ** between numbers.
    Errors name the file and line: `{where}:{line}: ...`.
    """
    try:
        tree = ast.parse(source, filename=where)
    except SyntaxError as err:
        raise UserError(f"recipe {where}:{err.lineno}: syntax error: {err.msg}") from None
    values: dict[str, Any] = {}
    for index, statement in enumerate(tree.body):
        if index == 0 and isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant) \
                and isinstance(statement.value.value, str):
            continue  # the docstring
        if not isinstance(statement, ast.Assign) or len(statement.targets) != 1 \
                or not isinstance(statement.targets[0], ast.Name):
            raise _not_data(where, statement, _describe(statement))
        values[statement.targets[0].id] = _literal(statement.value, where)
    return values


def _literal(node: ast.AST, where: str) -> Any:
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (bool, int, float, str)) or node.value is None:
            return node.value
        raise _not_data(where, node, f"the constant {node.value!r}")
    if isinstance(node, (ast.List, ast.Tuple)):
        items = [_literal(item, where) for item in node.elts]
        return items if isinstance(node, ast.List) else tuple(items)
    if isinstance(node, ast.Dict):
        if any(key is None for key in node.keys):
            raise _not_data(where, node, "`**` unpacking in a dict")
        return {_literal(k, where): _literal(v, where) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        operand = _number(node.operand, where)
        return -operand if isinstance(node.op, ast.USub) else operand
    if isinstance(node, ast.BinOp) and type(node.op) in _ARITHMETIC:
        left, right = _number(node.left, where), _number(node.right, where)
        if isinstance(node.op, ast.Pow) and abs(left) > 1 and abs(right) * math.log10(abs(left)) > _MAX_DIGITS:
            raise _not_data(where, node, f"a power with more than {_MAX_DIGITS} digits")
        try:
            return _ARITHMETIC[type(node.op)](left, right)
        except (ArithmeticError, ValueError) as err:
            raise _not_data(where, node, f"arithmetic that fails ({err})") from None
    raise _not_data(where, node, _describe(node))


def _number(node: ast.AST, where: str) -> int | float:
    value = _literal(node, where)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _not_data(where, node, f"arithmetic on {value!r} (only numbers)")
    return value


def _describe(node: ast.AST) -> str:
    names = {
        ast.Import: "an import", ast.ImportFrom: "an import", ast.Call: "a call", ast.Name: "a name",
        ast.Attribute: "an attribute", ast.JoinedStr: "an f-string", ast.Lambda: "a lambda",
        ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
        ast.GeneratorExp: "a comprehension", ast.FunctionDef: "a function definition",
        ast.AsyncFunctionDef: "a function definition", ast.ClassDef: "a class definition", ast.Set: "a set",
        ast.Subscript: "a subscript", ast.IfExp: "a conditional expression", ast.AugAssign: "an augmented assignment",
        ast.AnnAssign: "an annotated assignment", ast.Expr: "an expression statement",
        ast.Assign: "an assignment to several names or to something else than a name",
    }
    if isinstance(node, (ast.BinOp, ast.UnaryOp)):
        return f"the operator {type(node.op).__name__}"
    return names.get(type(node), f"`{type(node).__name__}`")


def _not_data(where: str, node: ast.AST, what: str) -> UserError:
    return UserError(
        f"recipe {where}:{getattr(node, 'lineno', '?')}: {what} is not allowed: recipes hold data only "
        "(name = literal: numbers, strings, True/False/None, lists/dicts of them, + - * / ** of numbers)"
    )


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
