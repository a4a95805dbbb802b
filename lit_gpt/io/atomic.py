"""Writing files and folders all or nothing: every output of the project goes through here.

A target is written under a hidden name beside it (`.NAME.partial-XXXXXXXX`: the same file system,
never $TMPDIR), fsynced, renamed over the target, and the folder fsynced: a crash leaves the old
target or the new one, never half of one. A failed write removes the temporary (and the parent
folders created for it); a full disk, read-only file system, permission or quota error becomes one
`UserError` naming the target.
"""

from __future__ import annotations

import errno
import itertools
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator, Optional, Union

from safetensors import SafetensorError

from lit_gpt.errors import UserError, first_line

PathLike = Union[str, Path]
# What the user fixes by freeing space, choosing another folder or fixing permissions.
DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG})
WRITE_ERRORS = (OSError, SafetensorError)  # safetensors reports I/O failures as its own type


def _existing(path: Path) -> Path:
    return next(p for p in (path, *path.parents) if p.exists())  # "." or "/" at the latest


def missing_folders(folder: Path) -> list[Path]:
    """`folder` and its parents that do not exist yet, deepest first."""
    return list(itertools.takewhile(lambda p: not p.exists(), [folder, *folder.parents]))


def remove_empty(folders: list[Path]) -> None:
    """Removes `folders` (deepest first) up to the first that is not empty."""
    for path in folders:
        try:
            path.rmdir()
        except OSError:
            break


def failure_reason(err: BaseException, folder: Path, needed_bytes: Optional[int] = None) -> str:
    """A short reason for a failed write; torch.save hides ENOSPC behind a zip-writer message, so
    the free space is compared with what was being written."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = first_line(err).split("I/O error: ", 1)[-1]  # safetensors: "Error while serializing: I/O error: <strerror>"
    if needed_bytes is not None:
        try:
            free = shutil.disk_usage(_existing(folder)).free
        except OSError:
            free = None
        if free is not None and free < needed_bytes:
            return f"no space left on device ({free / 1e6:.1f} MB free, about {needed_bytes / 1e6:.1f} MB needed; {text})"
    return text


@contextmanager
def disk_errors(label: str) -> Iterator[None]:
    """Turns a full disk, read-only file system, permission or quota error inside into one line naming `label`
    (for writers of other libraries, e.g. a Trainer's checkpoints, that cannot write through `staged`)."""
    try:
        yield
    except WRITE_ERRORS as err:
        if err.errno not in DISK_ERRNOS if isinstance(err, OSError) else "I/O error" not in str(err):
            raise
        raise UserError(f"cannot write {label}: {failure_reason(err, Path('.'))}") from None


def fsync_tree(path: Path, files: bool = True) -> None:
    """Flushes `path` (a file, or a folder and, with `files`, everything in it) to the disk."""
    paths = [*(p for p in path.rglob("*") if p.is_file()), path] if files and path.is_dir() else [path]
    for p in paths:
        try:
            fd = os.open(p, os.O_RDONLY)
        except OSError:  # some platforms cannot open a directory
            continue
        try:
            os.fsync(fd)
        except OSError:
            if p.is_file():  # a delayed write failed now (e.g. a full disk): the data is not on disk
                raise
            # not every file system syncs folders; the rename itself is done
        finally:
            os.close(fd)


def remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def staging_path(target: Path, tag: Optional[str] = None) -> Path:
    """The hidden temporary name beside `target` (`tag` makes it the same in every process)."""
    return target.parent / f".{target.name}.partial-{tag or uuid.uuid4().hex[:8]}"


def commit(staging: Path, target: Path) -> None:
    """Flushes `staging` and renames it over `target` (a previous folder is moved aside, and put back if
    the rename fails), then flushes the folder holding them."""
    fsync_tree(staging)
    if target.is_dir() and not target.is_symlink():  # os.replace cannot replace a non-empty folder
        retired = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(target, retired)
        try:
            os.rename(staging, target)
        except OSError:
            os.rename(retired, target)
            raise
        remove(retired)
    else:
        os.replace(staging, target)
    fsync_tree(target.parent, files=False)


@contextmanager
def staged(target: PathLike, what: str = "", folder: bool = False, needed_bytes: Optional[int] = None,
           also: tuple[type[BaseException], ...] = ()) -> Iterator[Path]:
    """Yields a hidden path beside `target` (an empty folder when `folder`) that replaces `target` on success
    and is removed on any error, with the parent folders it created. A write error (or one of `also`, e.g.
    torch.save's RuntimeError for a full disk) becomes a UserError naming `what` and `target`; `needed_bytes`
    lets it tell a full disk apart."""
    target = Path(target).expanduser()
    label = f"{what} {target}".strip()
    staging = staging_path(target)
    missing = missing_folders(target.parent)
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            # Created first, so that a read-only folder is reported as such and not as a library's own error.
            staging.mkdir() if folder else open(staging, "xb").close()
        except OSError as err:
            raise UserError(f"cannot write {label}: {err.strerror or err} ({_existing(target.parent)})") from None
        try:
            yield staging
            commit(staging, target)
        except (*WRITE_ERRORS, *also) as err:
            raise UserError(f"could not write {label}: {failure_reason(err, target.parent, needed_bytes)}; "
                            "nothing was written") from None
        finally:
            remove(staging)
    except BaseException:
        remove_empty(missing)
        raise


@contextmanager
def open_atomic(target: PathLike, mode: str = "w", what: str = "", **kwargs) -> Iterator[IO]:
    """`open(target, mode)` whose content replaces `target` only once the block finishes."""
    with staged(target, what) as staging, open(staging, mode, **kwargs) as f:
        yield f


def write_text(target: PathLike, text: str, what: str = "") -> Path:
    with open_atomic(target, "w", what, encoding="utf-8") as f:
        f.write(text)
    return Path(target)
