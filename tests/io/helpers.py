"""Lock files shared by the tests of lit_gpt/io/run_lock.py and lit_gpt/io/hyperparameters.py."""

import json
import subprocess
import sys
from pathlib import Path

from lit_gpt.io.run_lock import HOLDER


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def write_lock(folder: Path, **body) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / HOLDER).write_text(json.dumps({"started": "2026-01-01T00:00:00+00:00", "command": "pretrain.py", **body}))
