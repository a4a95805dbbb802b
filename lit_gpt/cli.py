"""What every entry point shares: user errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, Mapping, Optional, Sequence, TypeVar

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
    """`COMMAND NAME [options]`: runs table[NAME][0](options, prog) (table values: (entry, summary)).

    No name or --help lists the names with their one-line summaries (exit 2 without a name).
    """
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
