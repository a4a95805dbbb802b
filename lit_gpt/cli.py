"""What every entry point shares: user errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import functools
import math
import operator
import os
import re
import sys
import types
import typing
from typing import Any, Callable, Iterable, Mapping, Optional, Sequence, TypeVar

from lit_gpt.errors import UserError

T = TypeVar("T")


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage errors are a UserError: one line, exit code 2, no usage dump."""

    def error(self, message: str):
        raise UserError(message)


def exit_on_user_error(main: Callable[..., T]) -> Callable[..., T]:
    """Decorates an entry point so that a `UserError` ends the process with one clear line."""

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as err:
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            raise SystemExit(130) from None

    return wrapper


def run_subcommand(command: str, noun: str, table: Mapping[str, tuple[Callable[[list[str], str], None], str]],
                   argv: Optional[Sequence[str]] = None) -> int:
    """`COMMAND NAME [options]`: runs table[NAME][0](options, prog); no name or --help lists table's
    (entry, summary) summaries (exit 2 without a name)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        lines = [f"usage: {command} {{{','.join(table)}}} [options]", "", f"{noun}s:"]
        lines += [f"  {name:<12} {summary}" for name, (_, summary) in table.items()]
        lines += ["", f"`{command} {noun.upper()} --help` lists its options."]
        print("\n".join(lines))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in table:
        raise UserError(f"{command}: unknown {noun} {name!r}; choose one of {', '.join(table)}")
    table[name][0](rest, f"{command} {name}")
    return 0


# ----------------------------------------------------------------------------- typed settings
# Settings are dataclasses: each field's type is its parser, the docstring under it its help, and
# `setting(...)` its range. `check_fields` enforces them for every way a settings object is made
# (command line, recipe, YAML, Python), so a range is written once and checked once.
def setting(default: Any = dataclasses.MISSING, *, ge: Any = None, gt: Any = None, le: Any = None, lt: Any = None,
            path: bool = False) -> Any:
    """A field with its bounds; `path=True` makes it an absolute path when the settings are built."""
    bounds = {"ge": ge, "gt": gt, "le": le, "lt": lt, "path": path or None}
    return dataclasses.field(default=default, metadata={key: v for key, v in bounds.items() if v is not None})


def _optional(hint: Any) -> tuple[Any, bool]:
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return hint, False


def describe(hint: Any) -> str:
    """What a value of this type looks like, for error messages."""
    hint, nullable = _optional(hint)
    if typing.get_origin(hint) is typing.Literal:
        text = f"one of {', '.join(map(str, typing.get_args(hint)))}"
    else:
        names = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
                 dict: "a dict (a JSON object on the command line)"}
        text = names.get(typing.get_origin(hint) or hint) or str(hint).replace("typing.", "")
    return f"{text} or null" if nullable else text


def _bounds_text(meta: Mapping[str, Any]) -> str:
    low = ("[", meta["ge"]) if "ge" in meta else ("(", meta["gt"]) if "gt" in meta else None
    high = ("]", meta["le"]) if "le" in meta else (")", meta["lt"]) if "lt" in meta else None
    if low and high:
        return f"must be in {low[0]}{low[1]}, {high[1]}{high[0]}"
    if low:
        return f"must be {'>=' if low[0] == '[' else '>'} {low[1]}"
    return f"must be {'<=' if high[0] == ']' else '<'} {high[1]}"


def check_value(name: str, value: Any, hint: Any, meta: Mapping[str, Any], label: Optional[str] = None) -> Any:
    """`value` checked against the field's type and bounds (integral floats become ints: `2e9` tokens)."""
    label = label or f"--{name}"
    hint, nullable = _optional(hint)
    kind = typing.get_origin(hint) or hint
    if value is None and nullable:
        return None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    wrong_type = not number if kind in (int, float) else kind in (bool, str, dict) and not isinstance(value, kind)
    if value is None or wrong_type:
        raise UserError(f"{label} {value!r}: expected {describe(hint)}")
    if kind is typing.Literal and value not in typing.get_args(hint):
        raise UserError(f"{label} {value!r}: must be {describe(hint)}")
    if kind in (int, float):
        if not math.isfinite(value):
            raise UserError(f"{label} {value!r}: must be a finite number")
        if kind is int and not float(value).is_integer():
            raise UserError(f"{label} {value!r}: expected {describe(hint)}")
        value = kind(value)
        if not all(getattr(operator, key)(value, meta[key]) for key in ("ge", "gt", "le", "lt") if key in meta):
            raise UserError(f"{label} {value!r}: {_bounds_text(meta)}")
    if kind is str and meta.get("path"):
        value = os.path.abspath(os.path.expanduser(value))
    return value


def check_fields(settings: Any) -> None:
    """Checks (and normalises) every field of a settings dataclass in place; UserError names the field."""
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        setattr(settings, f.name, check_value(f.name, getattr(settings, f.name), hints[f.name], f.metadata))


def field_hints(*classes: type) -> dict[str, Any]:
    """{field name: type} over settings dataclasses whose field names are unique."""
    hints: dict[str, Any] = {}
    for cls in classes:
        for name, hint in typing.get_type_hints(cls).items():
            if name in hints:
                raise TypeError(f"setting {name!r} is defined twice")
            hints[name] = hint
    return hints


def _did_you_mean(names: Iterable[str], known: Iterable[str], n: int, prefix: str = "") -> str:
    close = [prefix + match for name in names for match in difflib.get_close_matches(name, list(known), n, 0.6)]
    return f" (did you mean {', '.join(close)}?)" if close else ""


def unknown_setting(key: str, known: Iterable[str], where: str) -> UserError:
    return UserError(f"{where}: unknown setting {key!r}{_did_you_mean([key], known, 3)}")


def settings_parser(prog: Optional[str], description: str, *classes: type):
    """A jsonargparse parser with one `--field` per field of `classes` (one help group per class),
    whose errors are one-line UserErrors naming the option."""
    import jsonargparse

    jsonargparse.set_parsing_settings(docstring_parse_attribute_docstrings=True)
    hints = field_hints(*classes)

    class Parser(jsonargparse.ArgumentParser):
        def error(self, message: str, ex: Optional[Exception] = None):
            raise _one_line_error(message, hints) from None

    parser = Parser(prog=prog, description=description, exit_on_error=False, allow_abbrev=False)
    for cls in classes:
        parser.add_class_arguments(cls, None, as_group=True, instantiate=False)
    return parser


def _one_line_error(message: str, hints: Mapping[str, Any]) -> UserError:
    key = re.search(r'[Kk]ey "([^"]+)"', message)
    got = re.findall(r"(?:Got|Given) value: (.*)", message)  # "Given": a Union's wording (Optional settings)
    if key and key.group(1) in hints:
        name = key.group(1)
        shown = f" {got[-1].strip()!r}" if got else ""
        finite_text = got and got[-1].strip().lower().lstrip("+-") in ("nan", "inf", "infinity")
        if finite_text and _optional(hints[name])[0] is float:
            return UserError(f"--{name}{shown}: must be a finite number")
        verb = "must be" if typing.get_origin(_optional(hints[name])[0]) is typing.Literal else "expected"
        return UserError(f"--{name}{shown}: {verb} {describe(hints[name])}")
    unknown = re.search(r"(?i)unrecognized arguments: (.*)", message)
    if unknown:
        words = unknown.group(1).split()
        hint = _did_you_mean([w[2:].split("=")[0] for w in words if w.startswith("--")], hints, 1, "--")
        return UserError(f"unrecognized arguments: {' '.join(words)}{hint}")
    return UserError(" ".join(message.split()))


def normalise_argv(argv: Sequence[str], hints: Mapping[str, Any], groups: Iterable[str] = ()) -> list[str]:
    """The command line as the parser reads it: `--group.name` -> `--name`, `--name=value` split,
    `none` for a nullable setting -> null, `2e9` for an integer setting -> 2000000000, 1/0 for a flag,
    and a flag with no value (`--dry_run`, followed by another option or nothing) -> true."""
    out: list[str] = []
    pending: Optional[str] = None  # the setting whose value is the next item
    for item in argv:
        if pending is not None and not (hints[pending] is bool and item.startswith("--")):
            out.append(_normal_text(item, hints[pending]))
            pending = None
            continue
        if pending is not None:  # a flag followed by another option
            out.append("true")
            pending = None
        name, eq, value = item[2:].partition("=")
        group, dot, rest = name.partition(".")
        if dot and group in groups and rest in hints:
            name = rest
        if not item.startswith("--") or name not in hints:
            out.append(item)
        elif eq:
            out += [f"--{name}", _normal_text(value, hints[name])]
        else:
            out.append(f"--{name}")
            pending = name
    if pending is not None and hints[pending] is bool:
        out.append("true")
    return out


def _normal_text(text: str, hint: Any) -> str:
    hint, nullable = _optional(hint)
    lowered = text.strip().lower()
    if nullable and lowered in ("none", "null"):
        return "null"
    if hint is int and re.fullmatch(r"[+-]?[\d_]+(\.\d*)?([eE][+-]?\d+)?", lowered):
        number = float(lowered.replace("_", "")) if any(c in lowered for c in ".e") else int(lowered.replace("_", ""))
        if float(number).is_integer():
            return str(int(number))
    if hint is bool and lowered in ("1", "0", "yes", "no", "on", "off"):
        return "true" if lowered in ("1", "yes", "on") else "false"
    return text
