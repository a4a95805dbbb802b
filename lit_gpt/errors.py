"""The library's one error type for bad input from the user."""


class UserError(Exception):
    """Bad input from the user (a path, an argument, a file's content).

    Entry points print its message as one line, without a traceback, and exit with code 2.
    The message must name the file, record or argument at fault.
    """
