"""One writer per run directory (lit_gpt/io/run_lock.py), in pretraining and SFT."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from lit_gpt.errors import UserError
from lit_gpt.pretrain.cli import main as pretrain_main
from lit_gpt.io.run_lock import HOLDER, RunDirLock, RunDirLocked, is_launching_process
from tests.io.helpers import dead_pid, write_lock
from tests.pretrain_helpers import REPO, read_metrics, tiny_settings, to_argv


pytestmark = pytest.mark.usefixtures("one_thread")


def snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


# ----------------------------------------------------------------------------- the lock itself
def test_second_run_into_a_locked_folder_refuses_with_one_line_and_changes_nothing(data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    # What a run being written looks like: a checkpoint and metrics. --resume auto would read them.
    (out / "step-00000004.pth").write_bytes(b"not read by the refused run")
    (out / "metrics.csv").write_text("step,loss\n4,2.0\n")
    with RunDirLock(out, command="pretrain.py --seed 1"):
        before = snapshot(out)
        with pytest.raises(SystemExit) as exit_:
            pretrain_main(to_argv(tiny_settings(*data, out, resume="auto")))
        assert snapshot(out) == before
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert f"pid {os.getpid()} on host {socket.gethostname()}" in err and "--out_dir" in err and str(out) in err
    assert not (out / HOLDER).exists()  # released by its holder


def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(tmp_path):
    pid = dead_pid()
    write_lock(tmp_path, host=socket.gethostname(), pid=pid)
    warnings = []
    with RunDirLock(tmp_path, warn=warnings.append, command="mine"):
        body = json.loads((tmp_path / HOLDER).read_text())
        assert body["pid"] == os.getpid() and body["host"] == socket.gethostname() and body["command"] == "mine"
        with pytest.raises(RunDirLocked):  # held now: a second taker is refused
            RunDirLock(tmp_path).acquire()
    assert len(warnings) == 1 and f"pid {pid}" in warnings[0] and "no longer running" in warnings[0]
    assert not (tmp_path / HOLDER).exists()


def test_lock_from_another_host_is_refused_and_kept(tmp_path):
    write_lock(tmp_path, host="node-17.cluster", pid=4242)
    before = snapshot(tmp_path)
    with pytest.raises(RunDirLocked) as err:
        RunDirLock(tmp_path).acquire()
    assert "pid 4242 on host node-17.cluster" in str(err.value) and "\n" not in str(err.value)
    assert snapshot(tmp_path)[HOLDER] == before[HOLDER]


def test_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(ValueError):
        with RunDirLock(tmp_path):
            raise ValueError("the run failed")
    with RunDirLock(tmp_path, warn=pytest.fail):  # free again, and no stale body left to warn about
        pass


def test_a_folder_under_a_file_is_one_line_naming_it(tmp_path):
    (tmp_path / "a_file").write_text("kept\n")
    folder = tmp_path / "a_file" / "run"
    with pytest.raises(UserError) as err:  # not os.listdir's NotADirectoryError from the clean-up
        RunDirLock(folder).acquire()
    assert str(folder) in str(err.value) and "Not a directory" in str(err.value) and "\n" not in str(err.value)
    assert (tmp_path / "a_file").read_text() == "kept\n"


@pytest.mark.parametrize(
    "world_size, environ, launching",
    [(1, {}, True), (2, {}, True), (2, {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "2"}, True),
     (4, {"RANK": "3", "WORLD_SIZE": "4"}, False), (2, {"SLURM_PROCID": "1", "SLURM_NTASKS": "2"}, False),
     # a rank variable left in the shell, without a launcher's world of the run's size, does not count
     (1, {"SLURM_PROCID": "1"}, True), (1, {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}, True),
     (2, {"SLURM_PROCID": "1", "SLURM_NTASKS": "8"}, True), (2, {"LOCAL_RANK": "1"}, True)],
)
def test_only_the_launching_process_takes_the_lock(tmp_path, world_size, environ, launching):
    assert is_launching_process(world_size, tmp_path, environ) is launching


def test_a_process_the_holder_started_does_not_take_the_lock(tmp_path):
    """Fabric starts the other ranks as children of the launching process: they find their parent holding it."""
    with RunDirLock(tmp_path):
        code = "import sys; from lit_gpt.io.run_lock import is_launching_process as f; print(f(2, sys.argv[1], {}))"
        child = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO)})
    assert child.stdout.strip() == "False", child.stderr
    assert is_launching_process(2, tmp_path, {})  # the holder gone: a new run's launcher again


# ----------------------------------------------------------------------------- pretraining
@pytest.mark.slow
# Each stray variable alone is checked in test_only_the_launching_process_takes_the_lock; here all at once.
@pytest.mark.parametrize("stray", [{}, {"SLURM_PROCID": "1", "RANK": "1", "LOCAL_RANK": "1"}])
def test_two_concurrent_pretraining_runs_into_one_out_dir(data, tmp_path, stray):
    """Run A takes the folder; run B, started while A runs (A is paused meanwhile, so the overlap
    does not depend on the machine's speed), refuses with one line; A's run is complete and alone.
    B's refusal does not depend on a rank variable left in its shell (`stray`)."""
    out = tmp_path / "shared"
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    for name in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "SLURM_PROCID", "SLURM_NTASKS"):
        env.pop(name, None)
    script = [sys.executable, str(REPO / "MEAP-Pretrain" / "pretrain.py")]
    first = subprocess.Popen([*script, *to_argv(tiny_settings(*data, out, seed=1, max_steps=6, eval_iters=0))],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if json.loads((out / HOLDER).read_text())["pid"] == first.pid:
                    break
            except (OSError, ValueError, KeyError):
                pass
            assert first.poll() is None, first.communicate()
            assert time.monotonic() < deadline, "run A never took the lock"
            time.sleep(0.05)
        first.send_signal(signal.SIGSTOP)
        before = snapshot(out)
        second = subprocess.run([*script, *to_argv(tiny_settings(*data, out, seed=2, max_steps=6, eval_iters=0,
                                                                 resume="auto"))],
                                env={**env, **stray}, capture_output=True, text=True, timeout=120)
        assert snapshot(out) == before
        first.send_signal(signal.SIGCONT)
        stdout, stderr = first.communicate(timeout=180)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr
    assert second.returncode == 2
    assert len(second.stderr.strip().splitlines()) == 1, second.stderr
    assert f"in use by pid {first.pid} on host {socket.gethostname()}" in second.stderr
    assert [int(r["step"]) for r in read_metrics(out)] == list(range(1, 7))
    assert yaml.safe_load((out / "hyperparameters.yaml").read_text())["optimizer"]["seed"] == 1
    assert not (out / HOLDER).exists()


# ----------------------------------------------------------------------------- SFT
def test_sft_into_a_locked_output_dir_refuses_before_reading_anything(tmp_path):
    from lit_gpt.sft.train import main as sft_main

    out = tmp_path / "sft"
    with RunDirLock(out):
        before = snapshot(out)
        with pytest.raises(RunDirLocked) as err:
            # Neither the model nor the data exist: the lock is checked first.
            sft_main(["--model_name_or_path", str(tmp_path / "no_model"), "--train_file", str(tmp_path / "none.json"),
                      "--output_dir", str(out), "--report_to", "none"])
        assert snapshot(out) == before
    assert "--output_dir" in str(err.value) and f"pid {os.getpid()}" in str(err.value)
