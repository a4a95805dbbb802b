"""FSDP2 (`--strategy fsdp`) on 2 CPU processes over gloo: it trains what one unsharded process
trains, and its full and sharded checkpoints resume exactly, on any number of processes."""

from __future__ import annotations

import contextlib
import os
import pickle
import runpy
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from lit_gpt.errors import UserError
from lit_gpt.pretrain import PretrainArgs, pretrain
from lit_gpt.pretrain.parallel import check_process_layout
from tests.pretrain_helpers import REPO, make_corpus, make_tokenizer, tiny_settings, to_argv, train_losses, val_losses

# 8 steps of a global batch of 8 = 2 processes x micro batch 2 x 2 accumulation (1 process: x 4).
SETTINGS = dict(max_steps=8, eval_interval=4, eval_iters=2, save_interval=4, keep_last=0, mask_ratio=0.15,
                micro_batch_size=2)
STEP4, STEP8 = "step-00000004.pth", "step-00000008.pth"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp")
    return make_corpus(root / "corpus"), make_tokenizer(root / "tokenizer")


@contextlib.contextmanager
def one_thread_in_process():
    """A run inside the test process: one thread (as each launched process has), and afterwards no
    process group or rendezvous variables left behind for the next run."""
    threads, environ = torch.get_num_threads(), dict(os.environ)
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        os.environ.clear()
        os.environ.update(environ)


def run_here(data, out: Path, **changes) -> int:
    with one_thread_in_process():
        return pretrain(PretrainArgs(**tiny_settings(*data, out, **{**SETTINGS, **changes})))


def launch(data, out: Path, **changes) -> subprocess.CompletedProcess:
    """The shell entry point with 2 processes over gloo (Fabric launches the second)."""
    settings = tiny_settings(*data, out, **{**SETTINGS, "devices": 2, "strategy": "fsdp", **changes})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(REPO / "MEAP-Pretrain" / "pretrain.py"), *to_argv(settings)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    return result


@pytest.fixture(scope="module")
def single(data, tmp_path_factory):
    """The reference: one process, no FSDP (the same global batch, blocks and masks)."""
    out = tmp_path_factory.mktemp("single") / "run"
    assert run_here(data, out) == 0
    return out


def floats(losses: dict) -> dict:
    return {step: float(value) for step, value in losses.items()}


def assert_close(got: dict, expected: dict, steps, rel: float) -> None:
    assert sorted(got) == list(steps)
    for step in steps:
        assert got[step] == pytest.approx(expected[step], rel=rel, abs=1e-7), step


@pytest.mark.slow
def test_two_processes_match_one_with_activation_checkpointing_and_resume_on_one(data, single, tmp_path):
    """Full checkpoints, activation checkpointing per block: 2 sharded processes give the losses of
    one unsharded process (fp32 rounding), and the 2-process checkpoint resumes on one process."""
    out = tmp_path / "fsdp"
    launch(data, out, activation_checkpointing=True, stop_step=4, checkpoint_format="full")
    expected = floats(train_losses(single))
    assert_close(floats(train_losses(out)), expected, range(1, 5), rel=1e-5)
    assert float(val_losses(out)[4]) == pytest.approx(float(val_losses(single)[4]), rel=1e-5)

    ckpt = torch.load(out / STEP4, weights_only=True)  # one file of full tensors, plain parameter names
    ref = torch.load(single / STEP4, weights_only=True)
    assert sorted(ckpt["model"]) == sorted(ref["model"])
    for key, value in ref["model"].items():
        torch.testing.assert_close(ckpt["model"][key], value, rtol=1e-5, atol=1e-6)

    assert run_here(data, out, resume="auto") == 0  # 2 -> 1 process, full checkpoint
    assert_close(floats(train_losses(out)), expected, range(1, 9), rel=1e-5)


def _export(checkpoint: Path, out: Path) -> dict[str, torch.Tensor]:
    """convert/convert_lit_checkpoint.py, run in this process."""
    script = runpy.run_path(str(REPO / "convert" / "convert_lit_checkpoint.py"))
    script["main"](["--checkpoint_name", str(checkpoint), "--out_dir", str(out), "--dtype", "float32"])
    return load_file(out / "model.safetensors")


@pytest.mark.slow
def test_sharded_checkpoints_resume_bitwise_resume_on_one_process_and_export(data, single, tmp_path):
    """A sharded 2-process run: its step-4 folder resumed on 2 processes continues bitwise; resumed
    on 1 process it continues as the unsharded run; its step-8 folder exports the Hugging Face model
    the unsharded run exports."""
    sharded = tmp_path / "sharded"
    launch(data, sharded, checkpoint_format="sharded")
    folder = sharded / STEP4
    assert folder.is_dir() and (folder / ".metadata").is_file() and (folder / "meta.pt").is_file()
    assert not [p.name for p in sharded.iterdir() if p.name.startswith(".")]  # no temporaries left
    expected = floats(train_losses(single))
    assert_close(floats(train_losses(sharded)), expected, range(1, 9), rel=1e-5)

    again = tmp_path / "again"
    launch(data, again, checkpoint_format="sharded", resume=str(folder))
    full_run = {step: loss for step, loss in train_losses(sharded).items() if step > 4}
    assert train_losses(again) == full_run  # identical float reprs: bitwise
    assert val_losses(again)[8] == val_losses(sharded)[8]

    one = tmp_path / "one"
    assert run_here(data, one, resume=str(folder)) == 0  # 2 -> 1 process, sharded checkpoint
    assert_close(floats(train_losses(one)), expected, range(5, 9), rel=1e-5)

    got, ref = _export(sharded / STEP8, tmp_path / "hf_sharded"), _export(single / STEP8, tmp_path / "hf_single")
    assert sorted(got) == sorted(ref)
    for key in ref:
        torch.testing.assert_close(got[key], ref[key], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_one_process_checkpoints_resume_on_two(data, single, tmp_path, capsys):
    """1 -> 2 processes: the unsharded run's full checkpoint, and a one-process FSDP run's sharded one
    (with the other two sharding modes: a 2-D hybrid mesh, and parameters kept from forward to backward)."""
    expected = floats(train_losses(single))
    from_full = tmp_path / "from_full"
    launch(data, from_full, resume=str(single / STEP4), fsdp_sharding="HYBRID_SHARD")  # a (1, 2) mesh
    assert_close(floats(train_losses(from_full)), expected, range(5, 9), rel=1e-5)

    alone = tmp_path / "alone"
    assert run_here(data, alone, strategy="fsdp", checkpoint_format="sharded", stop_step=4) == 0
    assert "FSDP2 over a single process" in capsys.readouterr().out  # says what it does with one process
    assert_close(floats(train_losses(alone)), expected, range(1, 5), rel=1e-5)
    from_sharded = tmp_path / "from_sharded"
    launch(data, from_sharded, checkpoint_format="sharded", resume=str(alone / STEP4), fsdp_sharding="SHARD_GRAD_OP")
    assert_close(floats(train_losses(from_sharded)), expected, range(5, 9), rel=1e-5)


@pytest.mark.slow
def test_bf16_mixed_on_two_processes_stays_near_one_process(data, tmp_path):
    """bf16-mixed: FSDP2 computes with bf16 parameters (fp32 shards, fp32 gradient reduction), one
    process under autocast with fp32 parameters; the rounding differs, the training does not."""
    changes = dict(precision="bf16-mixed", max_steps=4, save_interval=4)
    one, two = tmp_path / "one", tmp_path / "two"
    assert run_here(data, one, **changes) == 0
    launch(data, two, **changes)
    expected, got = floats(train_losses(one)), floats(train_losses(two))
    # bf16 keeps 8 bits of mantissa (0.4% per rounding); the runs differ by 8e-4 relative here.
    assert_close(got, expected, range(1, 5), rel=5e-3)
    assert got[4] < got[1] - 0.3
    from lit_gpt.io.sharded_checkpoint import read_full_state_dict

    model = read_full_state_dict(two / STEP4, "model")  # sharded: the default under FSDP
    assert model and all(v.dtype == torch.float32 for v in model.values())  # the fp32 shards are what is saved


class _RunsCode:
    """A pickle whose loading would run a shell command (creating the marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _entry_exit(argv: list[str], script: str = "MEAP-Pretrain/pretrain.py") -> int:
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(REPO / script))["main"](argv)
    return exit_info.value.code


def test_sharded_checkpoint_on_a_full_disk_and_a_forged_index(data, tmp_path, monkeypatch, capsys):
    """One-process FSDP, sharded format. A disk that fills while step 8's shards are written: one
    line, no temporary folder, step 4 intact (the resumed run equals the unsharded one). A folder
    whose .metadata would run code: refused in one line by the trainer and the converter, and the
    code never runs."""
    import errno

    import torch.distributed.checkpoint.filesystem as dcp_files

    real_write = dcp_files._write_item
    written = []

    def write_until_full(transforms, stream, *args, **kwargs):
        if f".{STEP8}.partial" in str(getattr(stream, "name", "")):
            written.append(stream.name)
            if len(written) > 3:  # some items of the step-8 shards are written, then the disk is full
                stream.write(b"part of a shard")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(transforms, stream, *args, **kwargs)

    monkeypatch.setattr(dcp_files, "_write_item", write_until_full)
    out = tmp_path / "run"
    settings = tiny_settings(*data, out, **{**SETTINGS, "strategy": "fsdp", "checkpoint_format": "sharded",
                                            "eval_iters": 0})
    with one_thread_in_process():
        assert _entry_exit(to_argv(settings)) == 2
    err = capsys.readouterr().err  # Fabric's lines about the process group, then ours
    last = err.strip().splitlines()[-1]
    assert err.count("error") == 1 and "Traceback" not in err, err
    assert last.startswith("error: cannot write checkpoint") and "No space left on device" in last and STEP8 in last
    assert len(written) > 3 and sorted(p.name for p in out.iterdir() if "step" in p.name) == [STEP4]
    monkeypatch.undo()

    assert run_here(data, out, strategy="fsdp", checkpoint_format="sharded", eval_iters=0, resume="auto") == 0
    reference = tmp_path / "reference"
    assert run_here(data, reference, eval_iters=0) == 0
    expected = floats(train_losses(reference))
    assert_close(floats(train_losses(out)), expected, range(1, 9), rel=1e-5)

    marker = tmp_path / "code_ran"
    forged = tmp_path / "forged" / STEP4
    forged.parent.mkdir()
    import shutil

    shutil.copytree(out / STEP4, forged)
    (forged / ".metadata").write_bytes(pickle.dumps(_RunsCode(marker)))
    capsys.readouterr()
    assert _entry_exit(to_argv({**settings, "out_dir": str(tmp_path / "out2"), "resume": str(forged)})) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(forged) in err and "for safety" in err, err
    assert _entry_exit(["--checkpoint_name", str(forged), "--out_dir", str(tmp_path / "hf")],
                       "convert/convert_lit_checkpoint.py") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(forged) in err and "for safety" in err, err
    assert not marker.exists()


@pytest.mark.slow
def test_compiled_blocks_compose_with_fsdp(data, single, tmp_path, monkeypatch):
    """--compile with --strategy fsdp: blocks compiled in place, then sharded, train as the eager
    unsharded run does (Dynamo without Inductor's C++ build, to stay fast on a CPU)."""
    from lit_gpt import compile as block_compile

    compiled = []
    real = block_compile.compile_blocks

    def eager_compile(model, **kwargs):
        compiled.append(model)
        return real(model, backend="eager")

    monkeypatch.setattr(block_compile, "compile_blocks", eager_compile)
    out = tmp_path / "compiled"
    assert run_here(data, out, strategy="fsdp", compile=True, max_steps=8, stop_step=2, eval_iters=0) == 0
    assert len(compiled) == 1 and all(block_compile.is_compiled(b) for b in compiled[0].transformer.h)
    assert_close(floats(train_losses(out)), floats(train_losses(single)), range(1, 3), rel=1e-5)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("checkpoint_format", ["full", "sharded"])
def test_fsdp_on_one_gpu_trains_and_resumes(data, tmp_path, checkpoint_format):
    """FSDP2 on one GPU (NCCL, bf16-mixed, fused AdamW over sharded parameters): the loss falls,
    and a run resumed from its checkpoint continues where it stopped."""
    out = tmp_path / "gpu"
    changes = dict(accelerator="cuda", devices=1, strategy="fsdp", precision="bf16-mixed", checkpoint_format=checkpoint_format,
                   max_steps=30, eval_interval=10, save_interval=10, activation_checkpointing=True)
    assert run_here(data, out, stop_step=20, **changes) == 0
    losses = floats(train_losses(out))
    assert losses[20] < losses[1] - 1.0
    assert run_here(data, out, resume="auto", **changes) == 0
    assert sorted(floats(train_losses(out))) == list(range(1, 31))


def _same(a, b) -> bool:
    """Bitwise equality of nested checkpoint contents."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and sorted(a) == sorted(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.mark.slow
def test_an_async_save_equals_a_sync_save_bitwise(data, tmp_path, monkeypatch):
    """One-process FSDP, sharded: the checkpoints written in the background (from a copy taken at the
    step, while training goes on and changes the weights) hold exactly what a blocking save writes."""
    import torch.distributed.checkpoint as dcp

    from lit_gpt.io.safe_load import load_torch_file
    from lit_gpt.io.sharded_checkpoint import read_full_state_dict

    calls = []
    real_async = dcp.async_save
    monkeypatch.setattr(dcp, "async_save", lambda *a, **k: calls.append(1) or real_async(*a, **k))
    runs = {}
    for asynchronous in (True, False):
        runs[asynchronous] = tmp_path / f"async_{asynchronous}"
        assert run_here(data, runs[asynchronous], strategy="fsdp", async_checkpoint=asynchronous, eval_iters=0) == 0
    assert len(calls) == 2  # steps 4 and 8 of the first run only
    for step in (STEP4, STEP8):
        for key in ("model", "optimizer"):
            assert _same(read_full_state_dict(runs[True] / step, key), read_full_state_dict(runs[False] / step, key))
        meta = [load_torch_file(runs[mode] / step / "meta.pt") for mode in (True, False)]
        settings = [m.pop("args") for m in meta]  # the settings tree: its checkpoint slice differs
        assert [s.get("checkpoint", s)["async_checkpoint"] for s in settings] == [True, False]
        assert _same(*meta)
    assert train_losses(runs[True]) == train_losses(runs[False])


@pytest.mark.slow
def test_a_failed_async_save_leaves_the_previous_checkpoint_newest_and_resumable(data, single, tmp_path, monkeypatch, capsys):
    """Step 6's shards fail while training goes on: step 6 is never counted as saved (no folder, no
    pruning, one line at the next save), step 4 stays the newest and `--resume auto` continues from it
    as the uninterrupted run."""
    import errno

    import torch.distributed.checkpoint as dcp
    import torch.distributed.checkpoint.filesystem as dcp_files

    step6 = "step-00000006.pth"
    calls = []
    real_async, real_write = dcp.async_save, dcp_files._write_item
    monkeypatch.setattr(dcp, "async_save", lambda *a, **k: calls.append(1) or real_async(*a, **k))

    def fail_step6(transforms, stream, *args, **kwargs):
        if f".{step6}.partial" in str(getattr(stream, "name", "")):
            stream.write(b"part of a shard")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(transforms, stream, *args, **kwargs)

    monkeypatch.setattr(dcp_files, "_write_item", fail_step6)
    out = tmp_path / "run"
    settings = tiny_settings(*data, out, **{**SETTINGS, "strategy": "fsdp", "save_interval": 2, "keep_last": 2})
    with one_thread_in_process():
        assert _entry_exit(to_argv(settings)) == 2
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "Traceback" not in err and last.startswith("error: cannot write checkpoint") and step6 in last, err
    assert len(calls) == 3  # steps 2, 4 and 6 were written in the background; step 8 never started
    assert sorted(p.name for p in out.iterdir() if "step" in p.name) == ["step-00000002.pth", STEP4]
    monkeypatch.undo()

    assert run_here(data, out, strategy="fsdp", save_interval=2, keep_last=2, resume="auto") == 0
    assert_close(floats(train_losses(out)), floats(train_losses(single)), range(1, 9), rel=1e-5)
    assert sorted(p.name for p in out.iterdir() if "step" in p.name) == [step6, STEP8]


# ----------------------------------------------------------------------------- meta-device initialisation
def _init_on_ranks(rank: int, world: int, store: str, out: str, mesh_shape: tuple, checkpointing: bool) -> None:
    """One rank: seed, build on the meta device, shard, materialise and initialise its shards (as the
    trainer does), then rank 0 saves the gathered full state dict."""
    from functools import partial

    import torch.distributed as dist
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
    from torch.distributed.device_mesh import init_device_mesh

    from lit_gpt.model import GPT
    from lit_gpt.pretrain.parallel import init_weights, materialize, parallelize

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    torch.manual_seed(INIT_SEED)
    with torch.device("meta"):
        model = GPT(_init_config(), fused=False)
    names = ("replicate", "shard")[-len(mesh_shape):]
    mesh = init_device_mesh("cpu", mesh_shape, mesh_dim_names=names)
    parallelize(model, mesh, sharding="HYBRID_SHARD" if len(mesh_shape) == 2 else "FULL_SHARD",
                activation_checkpointing=checkpointing)
    materialize(model, torch.device("cpu"), partial(init_weights, config=_init_config()))
    state = get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if rank == 0:
        torch.save({k: v.clone() for k, v in state.items()}, out)
    dist.destroy_process_group()


INIT_SEED = 4321


def _init_config():
    from lit_gpt.config import Config

    # 5 query groups and a vocabulary of 50 rows: shards of unequal size over 2 and 4 processes.
    return Config.from_name("micro_LLaMA", n_layer=3, n_embd=40, n_head=5, n_query_groups=5, intermediate_size=72,
                            vocab_size=50, padding_multiple=1)


@pytest.mark.slow
@pytest.mark.parametrize("mesh_shape, checkpointing", [((1,), False), ((2,), True), ((2, 2), False)])
def test_meta_device_init_equals_the_unsharded_model_bitwise(mesh_shape, checkpointing, tmp_path):
    """The sharded, meta-device initialisation gives every weight of `GPT(config)` built whole on the
    CPU with the same seed, bit for bit, on 1, 2 and 2x2 (hybrid) processes."""
    import math

    import torch.multiprocessing as mp

    from lit_gpt.model import GPT

    world = math.prod(mesh_shape)
    out = tmp_path / "state.pt"
    mp.spawn(_init_on_ranks, args=(world, str(tmp_path / "store"), str(out), mesh_shape, checkpointing),
             nprocs=world)
    torch.manual_seed(INIT_SEED)
    expected = GPT(_init_config(), fused=False).state_dict()
    got = torch.load(out, weights_only=True)
    assert sorted(got) == sorted(expected)
    for key, value in expected.items():
        assert torch.equal(got[key], value), key


@pytest.mark.slow
def test_hybrid_shard_on_two_simulated_nodes_matches_one_process_and_resumes_on_one(data, single, tmp_path):
    """HYBRID_SHARD over 2 nodes x 2 processes, the nodes simulated on this machine (two torchrun
    launchers with node ranks 0 and 1, 4 gloo processes; the 2x2 mesh replicates across the nodes and
    shards within each) trains what one process trains; its checkpoint resumes on one process."""
    import socket

    out = tmp_path / "hsdp"
    settings = tiny_settings(*data, out, **{**SETTINGS, "devices": 2, "num_nodes": 2,
                                            "strategy": "fsdp", "fsdp_sharding": "HYBRID_SHARD", "stop_step": 4})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    nodes = [subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--node_rank", str(node),
                               "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(port),
                               str(REPO / "MEAP-Pretrain" / "pretrain.py"), *to_argv(settings)],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for node in (0, 1)]
    results = [node.communicate(timeout=300) for node in nodes]
    for node, (_, stderr) in zip(nodes, results):
        assert node.returncode == 0, stderr[-3000:]
    expected = floats(train_losses(single))
    assert_close(floats(train_losses(out)), expected, range(1, 5), rel=1e-5)
    assert run_here(data, out, resume="auto") == 0  # 4 -> 1 process
    assert_close(floats(train_losses(out)), expected, range(1, 9), rel=1e-5)


# ----------------------------------------------------------------------------- launcher layout
@pytest.mark.parametrize("env,message", [
    ({"TORCHELASTIC_RUN_ID": "1", "WORLD_SIZE": "8", "LOCAL_WORLD_SIZE": "2"},
     "--devices 4: torchrun's LOCAL_WORLD_SIZE starts 2 processes per node; set --devices 2 (HYBRID_SHARD"),
    ({"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "4", "SLURM_JOB_NAME": "meap"},
     "--num_nodes 2: the SLURM job step has 4 nodes; set --num_nodes 4"),
    ({"SLURM_NTASKS": "8", "SLURM_NTASKS_PER_NODE": "8", "SLURM_NNODES": "1", "SLURM_JOB_NAME": "meap"},
     "--devices 4: SLURM starts 8 processes per node; set --devices 8"),
])
def test_a_mesh_the_launched_processes_do_not_form_is_refused(env, message):
    with pytest.raises(UserError) as err:
        check_process_layout(4, 2, "HYBRID_SHARD", env)
    assert str(err.value).startswith(message) and "\n" not in str(err.value)
    matching = {**env, "LOCAL_WORLD_SIZE": "4", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "2"}
    check_process_layout(4, 2, "HYBRID_SHARD", matching)
    if "SLURM_NTASKS" in env:  # an interactive allocation (salloc, srun --job-name interactive) launches nothing
        check_process_layout(4, 2, "HYBRID_SHARD", {**env, "SLURM_JOB_NAME": "interactive"})
