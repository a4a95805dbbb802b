"""One writer per run directory: two runs writing into one `--out_dir` would interleave their checkpoints
and metrics, and a later `--resume auto` would continue the mixture.

The launching process holds `RUN_LOCK` (an exclusive `filelock`, released by the kernel however the
process dies) and names itself in `HOLDER` for the message a second run prints. A `HOLDER` left on this
host by an ended run is taken over with a warning; one naming another host is refused, since that
process cannot be checked from here.

The launcher is decided from the run itself, never from a rank variable alone (a `SLURM_PROCID=1` left
in a shell must not let a one-process run skip the lock): a one-process run always takes it; the ranks
Fabric starts are children of the holder; an external launcher's rank counts only when it also
declares a world of the run's size.
"""

from __future__ import annotations

import datetime
import json
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Optional

from filelock import FileLock, Timeout

from lit_gpt.errors import UserError
from lit_gpt.io.atomic import missing_folders, remove_empty, write_text

RUN_LOCK = ".run.lock"
HOLDER = ".run.lock.json"
# (world size, rank) variables of torchrun, SLURM's srun and MPI launchers.
_LAUNCHERS = (("WORLD_SIZE", "RANK"), ("SLURM_NTASKS", "SLURM_PROCID"), ("OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK"),
              ("PMI_SIZE", "PMI_RANK"))


class RunDirLocked(UserError):
    """Another run holds the output folder."""


def read_holder(folder: str | Path) -> Optional[dict]:
    """The holder's JSON in `folder`; None when there is none or it is unreadable."""
    try:
        body = json.loads((Path(folder).expanduser() / HOLDER).read_text() or "null")
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def is_launching_process(world_size: int, folder: str | Path, environ: Optional[dict] = None) -> bool:
    """True when this process launches the run of `world_size` processes into `folder` (and so holds its lock)."""
    environ = os.environ if environ is None else environ
    holder = read_holder(folder)
    if holder and holder.get("host") == socket.gethostname() and holder.get("pid") == os.getppid():
        return False  # a rank process the holder started (Fabric's launcher)
    if world_size <= 1:
        return True
    for size, rank in _LAUNCHERS:
        if environ.get(size, "").strip() == str(world_size) and environ.get(rank, "").strip().isdigit():
            return int(environ[rank]) == 0
    return True  # Fabric will start the other ranks from this process


def _describe(holder: Optional[dict]) -> str:
    if not holder:
        return "another process"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (started {holder.get('started', '?')}: "
            f"{holder.get('command', '?')})")


class RunDirLock:
    """Context manager holding `folder`'s run lock (a no-op unless `enabled`); `RunDirLocked` before anything
    in the folder is touched when another run holds it. A folder it creates is removed again if left empty."""

    def __init__(self, folder: str | Path, what: str = "--out_dir", enabled: bool = True,
                 command: Optional[str] = None, warn=None):
        self.folder = Path(folder).expanduser()
        self.path = self.folder / RUN_LOCK
        self.what, self.enabled = what, enabled
        self.command = command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self._warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        self._lock: Optional[FileLock] = None
        self._created: list[Path] = []  # folders this lock made, deepest first

    def __enter__(self) -> "RunDirLock":
        if self.enabled:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        self._created = missing_folders(self.folder.absolute())
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            while True:
                lock = FileLock(self.path, timeout=0)
                lock.acquire()
                if self.path.exists():
                    break
                lock.release()  # a releasing run unlinked the file we opened: lock the new one
        except Timeout:
            self._created = []
            raise RunDirLocked(f"{self.what} {self.folder} is in use by {_describe(read_holder(self.folder))}; "
                               f"wait for it to end or choose another {self.what}") from None
        except OSError as err:
            self._remove_created()
            raise UserError(f"{self.what} {self.folder}: cannot lock it: {err.strerror or err}") from None
        try:
            holder, host = read_holder(self.folder), socket.gethostname()
            if holder and holder.get("host") != host:
                raise RunDirLocked(f"{self.what} {self.folder} is locked by {_describe(holder)}, which cannot be "
                                   f"checked from host {host}; if that run has ended, delete {self.folder / HOLDER}")
            if holder:  # the lock is free, so that run has ended (a live process with its pid is a reused number)
                self._warn(f"{self.what} {self.folder}: taking over the lock of {_describe(holder)}, "
                           "which is no longer running")
            write_text(self.folder / HOLDER, json.dumps({
                "host": host, "pid": os.getpid(), "command": self.command,
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            }) + "\n", self.what)
        except BaseException:
            lock.release()
            self._remove_created()
            raise
        self._lock = lock

    def release(self) -> None:
        if self._lock is None:
            return
        try:  # both removed while still locked; a waiting run sees the file gone and locks a new one
            (self.folder / HOLDER).unlink(missing_ok=True)
            self.path.unlink(missing_ok=True)
        finally:
            self._lock.release()
            self._lock = None
            self._remove_created()

    def _remove_created(self) -> None:
        """A run refused on bad input leaves no empty output folder behind."""
        if self._created and self.folder.is_dir() and not any(p.name != RUN_LOCK for p in self.folder.iterdir()):
            self.path.unlink(missing_ok=True)
            remove_empty(self._created)
        self._created = []
