"""One writer per run directory.

Two runs writing into one `--out_dir` interleave their checkpoints and metrics, and a later
`--resume auto` would continue the mixture. A run therefore holds `RUN_LOCK` in its output folder
for as long as it runs: an exclusive `fcntl.flock` on the file (the kernel releases it when the
process dies, however it dies) plus a JSON body naming the holder (host, pid, start time, command)
for the message the second run prints.

- free lock file, no body: taken;
- flock held by a live process: refused, naming it;
- body left by a dead process on this host (the flock is free): taken over with a warning;
- body naming another host: refused, since its process cannot be checked from here (on network
  file systems flock may not reach across hosts); delete the file once that run is known dead.

Only the launching process takes the lock: the processes a launcher (Fabric, torchrun, SLURM)
starts for the other ranks see a non-zero rank in their environment (`is_launching_process`).
"""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Optional

from lit_gpt.errors import UserError

RUN_LOCK = ".run.lock"
# Set by Fabric's subprocess launcher (LOCAL_RANK, NODE_RANK), torchrun (RANK, LOCAL_RANK, GROUP_RANK),
# SLURM (SLURM_PROCID) and MPI launchers for every process they start.
_RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "PMI_RANK", "OMPI_COMM_WORLD_RANK")


class RunDirLocked(UserError):
    """Another run holds the output folder."""


def is_launching_process(environ: Optional[dict] = None) -> bool:
    """True unless a launcher marked this process as a rank other than the global first one."""
    environ = os.environ if environ is None else environ
    for name in _RANK_VARIABLES:
        value = environ.get(name, "").strip()
        if value and value != "0":
            return False
    return True


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def read_holder(path: Path) -> Optional[dict]:
    """The JSON body of a lock file; None when there is none or it is unreadable."""
    try:
        body = json.loads(path.read_text() or "null")
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _describe(holder: Optional[dict]) -> str:
    if not holder:
        return "another process"
    return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} (started {holder.get('started', '?')}: "
            f"{holder.get('command', '?')})")


class RunDirLock:
    """Context manager holding `folder/.run.lock` for one run; `enabled=False` makes it a no-op.

    Raises `RunDirLocked` (a UserError: one line, exit code 2) before anything in the folder is
    touched when another run holds it. The folder is created if missing.
    """

    def __init__(self, folder: str | Path, what: str = "--out_dir", enabled: bool = True,
                 command: Optional[str] = None, warn=None):
        self.folder = Path(folder).expanduser()
        self.path = self.folder / RUN_LOCK
        self.what = what
        self.enabled = enabled
        self.command = command if command is not None else shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
        self._warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
        self._fd: Optional[int] = None
        self._created: list[Path] = []  # folders this lock made, deepest first: removed again if left empty

    def __enter__(self) -> "RunDirLock":
        if self.enabled:
            self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()

    def acquire(self) -> None:
        missing = self.folder.absolute()
        while not missing.exists() and missing != missing.parent:
            self._created.append(missing)
            missing = missing.parent
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise UserError(f"{self.what} {self.folder}: cannot create it: {err.strerror or err}") from None
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as err:
                raise UserError(f"{self.what} {self.folder}: cannot create {RUN_LOCK}: {err.strerror or err}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                self._remove_created()
                raise RunDirLocked(
                    f"{self.what} {self.folder} is in use by {_describe(read_holder(self.path))}; "
                    f"wait for it to end or choose another {self.what}"
                ) from None
            # A releasing run unlinks the file while holding it: if ours is no longer the file at the
            # path, we locked a dead inode and must try again on the new one.
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        try:
            self._check_previous_holder(fd)
            self._write_body(fd)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _check_previous_holder(self, fd: int) -> None:
        holder = read_holder(self.path)
        if not holder:
            return
        host = socket.gethostname()
        if holder.get("host") != host:
            raise RunDirLocked(
                f"{self.what} {self.folder} is locked by {_describe(holder)}, which cannot be checked from host "
                f"{host}; if that run has ended, delete {self.path}"
            )
        pid = holder.get("pid")
        # The flock is free, so no live process holds it; a live pid is a reused number.
        state = "is no longer running" if not (isinstance(pid, int) and _pid_alive(pid)) else "no longer holds it"
        self._warn(f"{self.what} {self.folder}: taking over the lock of {_describe(holder)}, which {state}")

    def _write_body(self, fd: int) -> None:
        body = {
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": self.command,
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(body) + "\n").encode(), 0)
        os.fsync(fd)

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still locked: a waiting opener re-checks the inode
        finally:
            os.close(self._fd)
            self._fd = None
        self._remove_created()

    def _remove_created(self) -> None:
        """A run refused on bad input leaves no empty output folder behind."""
        for folder in self._created:
            try:
                folder.rmdir()
            except OSError:  # not empty (the run wrote into it), or gone
                break
        self._created = []
