"""Run recipes (`pretrained/*.py`, docs/PRETRAINING.md), a run's hyperparameters.yaml, and the command line over them.
A recipe is data, parsed with `ast` and never run; `base = "other.py"` (relative to its folder) is the recipe it
starts from, whose dict values (`model_overrides`) it merges with. Precedence: defaults < bases < recipe < command line.
"""

from __future__ import annotations

import ast
import math
import operator
import sys
from pathlib import Path
from typing import Any, Optional, Sequence

from lit_gpt.cli import ArgumentParser, check_value, normalise_argv, settings_parser, unknown_setting
from lit_gpt.errors import UserError
from lit_gpt.pretrain.args import HINTS, SETTINGS, SLICES, PretrainArgs, flatten

BASE_KEY = "base"


def _merge(into: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    out = {**into, **values}
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            out[key] = {**into[key], **value}
    return out


def load_recipe(path: str | Path, seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The flat settings a recipe (or hyperparameters.yaml) makes, its bases' included, each checked
    against its type."""
    path = Path(path).expanduser()
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
        assigned = flatten(_read_yaml_settings(source, str(path)), f"recipe {path}")
    else:
        assigned = read_recipe_values(source, str(path))

    values: dict[str, Any] = {}
    for key, value in assigned.items():
        if key == BASE_KEY:
            continue
        if key not in SETTINGS:
            raise unknown_setting(key, SETTINGS, f"recipe {path}")
        if isinstance(value, tuple):
            value = list(value)
        meta = SLICES[SETTINGS[key]].__dataclass_fields__[key].metadata
        # Types only: paths stay as written (relative to where the run starts) until the run is built.
        values[key] = check_value(key, value, HINTS[key], {**meta, "path": False}, f"recipe {path}: {key}")

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
    """{name: value} of a recipe's top-level `name = literal` assignments (and a module docstring),
    in file order; errors name the file and line: `{where}:{line}: ...`."""
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


def build_parser(defaults: Optional[dict[str, Any]] = None, prog: Optional[str] = None):
    """The command line: one `--setting` per field of the settings tree, recipe values as defaults."""
    parser = settings_parser(
        prog, "MEAP pretraining with Lightning Fabric. Settings come from the defaults below, then the --config "
        "recipe, then the command line (each also as --slice.name, e.g. --meap.mask_ratio).", *SLICES.values())
    parser.add_argument("--config", metavar="RECIPE", help="recipe file (pretrained/*.py) or a run's hyperparameters.yaml")
    parser.add_argument("--print_config", action="store_true", help="print the resolved settings as YAML and exit")
    if defaults:
        parser.set_defaults(**defaults)
    return parser


def parse_args(argv: Optional[Sequence[str]] = None, prog: Optional[str] = None) -> PretrainArgs:
    """PretrainArgs from `--config RECIPE` and `--setting value` overrides, checked once.
    `--print_config` prints them as YAML (that `--config` reads back) and exits."""
    argv = list(sys.argv[1:] if argv is None else argv)
    before = ArgumentParser(add_help=False, allow_abbrev=False)
    before.add_argument("--config")
    config = before.parse_known_args(argv)[0].config
    recipe = load_recipe(config) if config else {}
    parser = build_parser(recipe, prog)
    show = "--print_config" in argv  # read here: jsonargparse gives the name a meaning of its own
    parsed = parser.parse_args(normalise_argv([a for a in argv if a != "--print_config"], HINTS, SLICES)).as_dict()
    parsed.pop("print_config")
    parsed.pop("config")
    parsed["model_overrides"] = {**recipe.get("model_overrides", {}), **(parsed["model_overrides"] or {})}
    args = PretrainArgs(**parsed)
    if show:
        import yaml

        from lit_gpt.io.hyperparameters import plain

        print(yaml.safe_dump(plain(args.to_dict()), sort_keys=False), end="")
        raise SystemExit(0)
    return args
