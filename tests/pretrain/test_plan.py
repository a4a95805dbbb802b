"""The memory and time plan (`--dry_run`, lit_gpt/pretrain/plan.py) against measurements.

Weights, gradients and optimizer state are compared exactly with the real tensors after a step
(one process; FSDP2 shards from `fully_shard` over a fake 8-process group). Activations are
compared with the peak that torch's MemTracker records during a training step on CPU (PyTorch
kernels, fp32): the peak of everything but parameters, gradients and optimizer state. Over the
tiny models below (2-4 layers, n_embd 64-256, GQA and MHA) the estimate is 0.91-1.14 x the
measured peak with and without activation checkpointing; asserted within 20 %.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lit_gpt.config import Config
from lit_gpt.model import GPT
from lit_gpt.pretrain.parallel import apply_activation_checkpointing
from lit_gpt.pretrain.plan import activation_bytes, state_bytes

REPO = Path(__file__).resolve().parents[2]


def tiny(n_layer=2, n_embd=64, n_head=4, n_query_groups=1, intermediate_size=172, block_size=64, vocab=256):
    return Config.from_name("tiny_LLaMA_1b_mask", n_layer=n_layer, n_embd=n_embd, n_head=n_head,
                            n_query_groups=n_query_groups, intermediate_size=intermediate_size,
                            block_size=block_size, vocab_size=vocab, padded_vocab_size=vocab)


def nbytes(tensors):
    return sum(t.numel() * t.element_size() for t in tensors)


@pytest.mark.parametrize("precision", ["32-true", "bf16-true"])
def test_weights_grads_and_optimizer_state_are_the_real_tensors_bytes(precision):
    config = tiny(n_layer=3, n_embd=96, n_head=6, n_query_groups=2, intermediate_size=200)
    model = GPT(config, fused=False)
    if precision == "bf16-true":
        model = model.to(torch.bfloat16)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randint(0, 256, (2, 64))
    model(x, targets=x).backward()
    grads = nbytes(p.grad for p in model.parameters())
    optimizer.step()
    state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
    planned = state_bytes(config, precision, fsdp=None, shard_over=1, ddp=False)
    assert planned["params"] == sum(p.numel() for p in model.parameters())
    assert planned["weights"] == nbytes(model.parameters())
    assert planned["grads"] == grads
    assert planned["optimizer"] == nbytes(state)
    assert planned["gathered"] == 0  # no compute copies when stored and compute dtypes agree


@pytest.mark.parametrize("sharding,mesh_shape", [("FULL_SHARD", (8,)), ("HYBRID_SHARD", (2, 4))])
def test_sharded_bytes_per_rank_are_fully_shards_largest_shard(sharding, mesh_shape):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.testing._internal.distributed.fake_pg import FakeStore

    from lit_gpt.pretrain.parallel import parallelize

    # Shapes chosen so no dimension divides by 8: every shard is padded differently.
    config = tiny(n_embd=72, intermediate_size=100, vocab=101)
    dist.init_process_group("fake", store=FakeStore(), rank=0, world_size=8)
    try:
        mesh = init_device_mesh("cpu", mesh_shape, mesh_dim_names=("replicate", "shard")[-len(mesh_shape):])
        with torch.device("meta"):
            model = GPT(config, fused=False)
        parallelize(model, mesh, precision="bf16-mixed", sharding=sharding)
        local = sum(p.to_local().numel() for p in model.parameters())  # rank 0 holds the largest shards
    finally:
        dist.destroy_process_group()
    planned = state_bytes(config, "bf16-mixed", sharding, mesh_shape[-1], ddp=False)
    assert planned["weights"] == planned["grads"] == 4 * local
    assert planned["optimizer"] == 8 * local + 4 * len(list(GPT(config).parameters()))


def measured_activation_peak(config, micro_batch, checkpointing, chunk):
    from torch.distributed._tools.mem_tracker import MemTracker, _MemRefType

    torch.manual_seed(0)
    model = GPT(config, fused=False)
    model.loss_chunk_size = chunk
    if checkpointing:
        apply_activation_checkpointing(model)
    optimizer = torch.optim.AdamW(model.parameters())
    x = torch.randint(0, config.vocab_size, (micro_batch, config.block_size))
    tracker = MemTracker()
    tracker.track_external(model, optimizer)
    with tracker:
        for step in range(2):  # the second step, once the optimizer state exists
            model(x, targets=x.roll(-1, 1)).backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            if step == 0:
                tracker.reset_mod_stats()
    peak = tracker.get_tracker_snapshot("peak")[torch.device("cpu")]
    return peak["Total"] - peak[_MemRefType.PARAM] - peak[_MemRefType.GRAD] - peak[_MemRefType.OPT]


@pytest.mark.parametrize("checkpointing", [False, True], ids=["plain", "checkpointed"])
@pytest.mark.parametrize("shape,micro_batch", [
    (dict(), 4),
    (dict(n_layer=3, n_embd=128, n_query_groups=2, intermediate_size=344, block_size=128, vocab=512), 4),
    (dict(n_layer=4, n_embd=256, n_head=8, n_query_groups=2, intermediate_size=688, block_size=128, vocab=1000), 2),
    (dict(n_layer=4, n_embd=128, n_head=8, n_query_groups=8, intermediate_size=256, vocab=2048), 8),
], ids=["2x64", "3x128", "4x256", "4x128-mha"])
def test_activation_estimate_is_within_20_percent_of_the_measured_peak(shape, micro_batch, checkpointing):
    config = tiny(**shape)
    measured = measured_activation_peak(config, micro_batch, checkpointing, chunk=256)
    estimate = activation_bytes(config, micro_batch, "32-true", fused=False, checkpointed=checkpointing, loss_chunk=256)
    assert 0.8 <= estimate / measured <= 1.2, (estimate, measured)


def run_cli(*flags, env_extra=None):
    env = {**os.environ, "PYTHONPATH": str(REPO), **(env_extra or {})}
    return subprocess.run([sys.executable, str(REPO / "MEAP-Pretrain" / "pretrain.py"), *flags],
                          capture_output=True, text=True, env=env, timeout=120)


def test_dry_run_plans_four_nodes_of_gpus_on_a_cpu_machine_and_writes_nothing(tmp_path):
    out = tmp_path / "run"
    proc = run_cli("--config", str(REPO / "pretrained" / "meap_1b.py"), "--devices", "8", "--num_nodes", "4",
                   "--fsdp_sharding", "HYBRID_SHARD", "--dry_run", "--plan_days", "14", "--out_dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert not out.exists()
    text = proc.stdout
    tokens = 190_000 * 256 * 4096
    assert f"= {tokens:,} tokens" in text
    assert f"{tokens / (14 * 86400):,.0f} tokens/s in total, {tokens / (14 * 86400) / 32:,.0f} per device" in text
    assert "32 x cuda (4 node(s) x 8), FSDP HYBRID_SHARD, sharded over 8" in text
    assert "(1 accumulation steps)" in text  # 256 / (32 x 8)
    config = Config.from_name("tiny_LLaMA_1b_mask")
    with torch.device("meta"):  # the real model's parameters, without allocating 4.7 GB
        model = GPT(config, fused=False)
    assert f"{sum(p.numel() for p in model.parameters()):,} parameters" in text


def test_dry_run_refuses_a_batch_the_world_cannot_split(tmp_path):
    proc = run_cli("--config", str(REPO / "pretrained" / "meap_1b.py"), "--devices", "8", "--num_nodes", "3",
                   "--dry_run", "--out_dir", str(tmp_path / "run"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("error: --global_batch_size 256 does not split over 24 processes")


def test_a_mismatched_launcher_is_refused_before_launch_from_the_shell(tmp_path):
    proc = run_cli("--config", str(REPO / "pretrained" / "meap_1b.py"), "--devices", "8", "--num_nodes", "1",
                   "--dry_run", "--out_dir", str(tmp_path / "run"),
                   env_extra={"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "4", "SLURM_NNODES": "1",
                              "SLURM_JOB_NAME": "meap"})
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("error: --devices 8: SLURM starts 4 processes per node; set --devices 4")


def test_a_token_budget_is_planned_in_whole_steps_as_the_trainer_runs_it(tmp_path):
    proc = run_cli("--config", str(REPO / "pretrained" / "meap_1b.py"), "--devices", "8", "--max_steps", "none",
                   "--max_tokens", "1e9", "--dry_run", "--out_dir", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    steps = -(-1_000_000_000 // (256 * 4096))  # plan_run's ceil(max_tokens / tokens per step)
    assert f"budget: {steps:,} steps x 256 x 4096 = {steps * 256 * 4096:,} tokens" in proc.stdout
