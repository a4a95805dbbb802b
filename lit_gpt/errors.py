"""The library's one error type for bad input from the user."""


class UserError(Exception):
    """Bad input from the user (a path, an argument, a file's content).

    Entry points print its message as one line, without a traceback, and exit with code 2.
    The message must name the file, record or argument at fault.
    """


def first_line(err: BaseException, root: bool = False) -> str:
    """The first line of `err`'s message (with `root`, of the error that started the chain), else its type's name."""
    while root and (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
