"""What every entry point shares: user errors become one line on stderr and a non-zero exit."""

from __future__ import annotations

import argparse
import functools
import sys
from typing import Callable, TypeVar

T = TypeVar("T")


class UserError(Exception):
    """Bad input from the user (a path, an argument, a file's content).

    Entry points print its message as one line, without a traceback, and exit with code 2.
    The message must name the file, record or argument at fault.
    """


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
