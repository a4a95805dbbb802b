"""The worker processes of a prepare run (lit_gpt/prepare/pool.py) end with the main process."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.prepare.helpers import DOCS, c4_lines, write_lines

REPO = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has ended; only its exit status waits to be collected


DRIVER = """
import os, sys, time
from pathlib import Path
import lit_gpt.prepare.pipeline as prepare_module

def stuck(*args, **kwargs):  # a worker busy on a source for a long time
    Path(sys.argv[4], str(os.getpid())).touch()
    time.sleep(300)
    yield from ()

prepare_module.iter_records = stuck
prepare_module.prepare(sys.argv[1], sys.argv[2], sys.argv[3], num_workers=2, log=lambda line: None)
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc")
def test_workers_end_when_the_main_process_is_killed(tmp_path):
    src = tmp_path / "src"
    for i in range(2):
        write_lines(src / f"c4-train.0000{i}-of-00002.json.gz", c4_lines(DOCS))
    busy = tmp_path / "busy"  # each worker leaves its pid here once it is at work
    busy.mkdir()
    main = subprocess.Popen([sys.executable, "-c", DRIVER, str(src), str(tmp_path / "dst"),
                             str(REPO / "data" / "tokenizer"), str(busy)],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while len(workers := [int(p.name) for p in busy.iterdir()]) < 2:
            assert main.poll() is None, main.stderr.read().decode()
            assert time.monotonic() < deadline, "the workers did not start"
            time.sleep(0.2)
        assert set(workers) <= set(_children(main.pid))
        main.send_signal(signal.SIGKILL)
        main.wait()
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in workers if _alive(p)], "workers outlived the main process"
    finally:
        if main.poll() is None:
            main.kill()
        for pid in workers:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
