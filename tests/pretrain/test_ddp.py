"""Several processes: DDP on CPU (gloo) must train exactly what one process trains (FSDP: test_parallel.py)."""

import os
import subprocess
import sys

import pytest
import torch

from lit_gpt.pretrain import PretrainArgs, pretrain
from tests.pretrain_helpers import REPO, make_corpus, make_tokenizer, tiny_settings, to_argv, train_losses, val_losses

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("ddp")
    return make_corpus(root / "corpus"), make_tokenizer(root / "tokenizer")


def _floats(losses):
    return {step: float(value) for step, value in losses.items()}


def test_two_cpu_processes_match_one_and_resume_on_one(data, tmp_path):
    """2 x DDP (gloo) x 2 accumulation vs 1 process x 4 accumulation, micro batch 2: the same
    global batch of 8, the same blocks and the same MEAP masks (both follow the micro batch's index
    in the global batch), so the same losses within fp32 rounding. Then the 2-process run, stopped
    at step 4, is resumed by a single process."""
    settings = dict(max_steps=8, eval_interval=4, eval_iters=2, save_interval=4, mask_ratio=0.15, micro_batch_size=2)
    single = tmp_path / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert pretrain(PretrainArgs(**tiny_settings(*data, single, **settings))) == 0
    finally:
        torch.set_num_threads(threads)

    double = tmp_path / "double"
    argv = to_argv(tiny_settings(*data, double, devices=2, strategy="ddp", stop_step=4, **settings))
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / "MEAP-Pretrain" / "pretrain.py"), *argv], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr

    expected, got = _floats(train_losses(single)), _floats(train_losses(double))
    assert sorted(got) == [1, 2, 3, 4]
    for step in got:
        assert got[step] == pytest.approx(expected[step], rel=2e-5, abs=1e-6), step
    assert _floats(val_losses(double))[4] == pytest.approx(_floats(val_losses(single))[4], rel=2e-5)

    # Resume the 2-process run with one process: the data position and the masks follow the
    # global batch, not the number of processes.
    torch.set_num_threads(1)
    try:
        assert pretrain(PretrainArgs(**tiny_settings(*data, double, resume="auto", **settings))) == 0
    finally:
        torch.set_num_threads(threads)
    got = _floats(train_losses(double))
    assert sorted(got) == list(range(1, 9))
    for step in range(5, 9):
        assert got[step] == pytest.approx(expected[step], rel=1e-4, abs=1e-6), step


def test_launcher_runs_from_any_directory_with_relative_paths(data, tmp_path):
    corpus, tokenizer = data
    work = tmp_path / "elsewhere"
    work.mkdir()
    (work / "recipe.py").write_text(f'base = "{REPO / "pretrained" / "meap_tiny.py"}"\nmax_steps = 2\n')
    settings = tiny_settings(corpus, tokenizer, "runs/tiny", max_steps=2, eval_iters=0)
    settings.pop("max_steps")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(["bash", str(REPO / "scripts" / "run_one_node.sh"), "recipe.py", *to_argv(settings)],
                            cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(train_losses(work / "runs" / "tiny")) == [1, 2]  # --out_dir relative to where it was typed
    assert (work / "runs" / "tiny" / "step-00000002.pth").is_file()
