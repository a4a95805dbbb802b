"""Writing conversion outputs all or nothing: a hidden staging copy, renamed into place at the end.

A read-only destination, a full disk or any other write failure ends in one `UserError` naming the
output, with the staging copy and any parent folders created for it removed, and whatever was at
the destination before left untouched.
"""

from __future__ import annotations

import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from lit_gpt.errors import UserError


def _write_errors() -> tuple[type[BaseException], ...]:
    from safetensors import SafetensorError  # safetensors reports I/O failures as its own type

    return (OSError, SafetensorError)


def write_failure_reason(err: BaseException, folder: Path, needed_bytes: Optional[int] = None) -> str:
    """A short reason for a failed write; torch.save hides ENOSPC behind a zip-writer message, so
    the free space is compared with what was being written."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    text = text.split("I/O error: ", 1)[-1]  # safetensors: "Error while serializing: I/O error: <strerror>"
    if needed_bytes is not None:
        try:
            free = shutil.disk_usage(_existing(folder)).free
        except OSError:
            free = None
        if free is not None and free < needed_bytes:
            return f"no space left on device ({free / 1e6:.1f} MB free, about {needed_bytes / 1e6:.1f} MB needed; {text})"
    return text


def _existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


@contextmanager
def _created_parents(folder: Path, what: str) -> Iterator[None]:
    """Creates `folder` with its parents; on any error inside, removes the ones it created."""
    missing = []
    parent = folder
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UserError(f"cannot write {what}: {err.strerror or err} ({_existing(folder)})") from None
    try:
        yield
    except BaseException:
        for path in missing:  # innermost first
            try:
                path.rmdir()
            except OSError:
                break
        raise


@contextmanager
def staged_dir(out: Path, what: str = "--out_dir") -> Iterator[Path]:
    """Yields a fresh hidden folder next to `out`; on success it replaces `out`, on error it is removed.

    A write failure (OSError, safetensors' I/O error) becomes a UserError naming `what` and `out`.
    """
    label = f"{what} {out}"
    with _created_parents(out.parent, label):
        staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            staging.mkdir()
        except OSError as err:
            raise UserError(f"cannot write {label}: {err.strerror or err} ({out.parent})") from None
        try:
            yield staging
            _replace_dir(staging, out)
        except _write_errors() as err:
            raise UserError(f"could not write {label}: {write_failure_reason(err, out.parent)}; nothing was written") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)


def _replace_dir(staging: Path, out: Path) -> None:
    if not out.exists():
        os.rename(staging, out)
        return
    retired = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    os.rename(out, retired)
    try:
        os.rename(staging, out)
    except OSError:
        os.rename(retired, out)  # put the previous folder back
        raise
    shutil.rmtree(retired)


@contextmanager
def staged_file(out: Path, what: str = "--out", needed_bytes: Optional[int] = None) -> Iterator[Path]:
    """Yields a hidden path next to `out`; on success it replaces `out`, on error it is removed.

    Any exception from writing it (torch.save reports a full disk as a RuntimeError) becomes a
    UserError naming `what` and `out`; `needed_bytes` lets the message tell a full disk apart.
    """
    label = f"{what} {out}"
    with _created_parents(out.parent, label):
        staging = out.parent / f".{out.name}.partial-{uuid.uuid4().hex[:8]}"
        try:
            # Created first so that a read-only folder is reported as such, not as torch.save's zip-writer error.
            open(staging, "xb").close()
        except OSError as err:
            raise UserError(f"cannot write {label}: {err.strerror or err} ({out.parent})") from None
        try:
            yield staging
            os.replace(staging, out)
        except (*_write_errors(), RuntimeError) as err:
            raise UserError(f"could not write {label}: {write_failure_reason(err, out.parent, needed_bytes)}; "
                            "nothing was written") from None
        finally:
            if staging.exists():
                staging.unlink()
