import errno
import importlib.util
import json
import math
import shutil
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lit_gpt.config import Config
from lit_gpt.model import GPT
from lit_gpt.data import PackedStream
from lit_gpt.pretrain import PretrainArgs, pretrain
from tests.pretrain_helpers import (
    BLOCK,
    REPO,
    TINY_MODEL,
    make_tokenizer,
    read_metrics,
    tiny_settings,
    to_argv,
    train_losses,
    val_losses,
    write_chunk,
)

from tests.pretrain.helpers import _entry, run


pytestmark = pytest.mark.usefixtures("one_thread")


# ----------------------------------------------------------------------------- a tiny run
def test_tiny_run_learns_and_writes_metrics_and_checkpoints(data, tmp_path):
    out = tmp_path / "run"
    assert run(data, out, max_steps=24, eval_interval=8, save_interval=8) == 0

    rows = read_metrics(out)
    assert list(rows[0]) == ["step", "tokens", "loss", "lr", "grad_norm", "tokens_per_sec", "mfu", "val_loss",
                             "val_ppl", "elapsed_s", "mask_fraction"]
    train = [r for r in rows if r["loss"]]
    assert [int(r["step"]) for r in train] == list(range(1, 25))
    assert all(int(r["tokens"]) == int(r["step"]) * 8 * BLOCK for r in rows)
    assert all(float(r["tokens_per_sec"]) > 0 and float(r["grad_norm"]) > 0 for r in train)
    first, last = float(train[0]["loss"]), float(train[-1]["loss"])
    assert first > math.log(48) - 0.5  # starts near uniform over the 49-token vocabulary
    assert last < first - 1.0, (first, last)
    val = [r for r in rows if r["val_loss"]]
    assert [int(r["step"]) for r in val] == [8, 16, 24]
    assert all(math.isclose(float(r["val_ppl"]), math.exp(float(r["val_loss"])), rel_tol=1e-9) for r in val)
    assert float(val[-1]["val_loss"]) < float(val[0]["val_loss"])

    # keep_last=2 of steps 8, 16, 24; nothing temporary left behind.
    assert sorted(p.name for p in out.iterdir() if p.suffix == ".pth") == ["step-00000016.pth", "step-00000024.pth"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")]

    ckpt = torch.load(out / "step-00000024.pth", weights_only=True)
    for key in ("model", "optimizer", "step", "tokens", "data", "rng", "config", "tokenizer_dir", "mask_id", "eos_id"):
        assert key in ckpt, key
    assert ckpt["step"] == 24 and ckpt["tokens"] == 24 * 8 * BLOCK
    assert ckpt["eos_id"] == 2 and ckpt["mask_id"] == 48  # [MASK] appended after the 48 tokens
    assert Path(ckpt["tokenizer_dir"]) == data[1].resolve()
    config = Config.from_dict(ckpt["config"])
    assert (config.n_layer, config.n_embd, config.block_size, config.padded_vocab_size) == (2, 32, BLOCK, 64)
    GPT(config).load_state_dict(ckpt["model"], strict=True)
    assert ckpt["data"]["stream"]["consumed"] == 24 * 8


def test_mask_ratio_zero_is_plain_next_token_prediction(data, tmp_path):
    """The trainer at mask_ratio 0 against a plain NTP loop written here: same init, same blocks,
    logits + F.cross_entropy, AdamW and clipping by hand."""
    corpus, tokenizer = data
    steps, lr = 3, 3e-3
    out = tmp_path / "ntp"
    run(data, out, mask_ratio=0.0, max_steps=steps, learning_rate=lr, min_lr=lr, warmup_steps=0, eval_iters=0)
    got = [float(v) for v in train_losses(out).values()]

    torch.manual_seed(1234)
    config = Config.from_name("micro_LLaMA", **TINY_MODEL, block_size=BLOCK, vocab_size=49)
    model = GPT(config, fused=False)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05, betas=(0.9, 0.95))
    stream = PackedStream(sorted(corpus.glob("c4*.bin")), BLOCK, seed=1234, shuffle=True, wrap=True)
    expected = []
    for step in range(steps):
        blocks = torch.stack([stream.sample_at(p) for p in range(step * 8, step * 8 + 8)])
        losses = []
        for micro in (blocks[:4], blocks[4:]):
            logits = model(micro[:, :-1])
            loss = F.cross_entropy(logits.flatten(0, 1), micro[:, 1:].flatten())
            (loss / 2).backward()
            losses.append(loss.item())
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        expected.append(sum(losses) / 2)
    assert got == pytest.approx(expected, rel=1e-5)

    # Masking changes the inputs, hence the losses: the comparison above can fail.
    run(data, tmp_path / "meap", mask_ratio=0.15, max_steps=steps, learning_rate=lr, min_lr=lr, warmup_steps=0,
        eval_iters=0)
    assert [float(v) for v in train_losses(tmp_path / "meap").values()] != pytest.approx(expected, rel=1e-5)


def test_upstream_mask_scheme_reaches_the_trainer(data, tmp_path, monkeypatch):
    """With --mask_scheme upstream every sequence of a step is masked at the positions the upstream
    loop draws (global `random.seed(50 + step % 51)`, written out here), whatever the micro batch."""
    from lit_gpt.data.batches import TrainBatches

    seen = []
    original = TrainBatches.micro_batch

    def spy(self, step, micro_step):
        batch = original(self, step, micro_step)
        seen.append((step, batch[0]))
        return batch

    monkeypatch.setattr(TrainBatches, "micro_batch", spy)
    run(data, tmp_path / "out", mask_scheme="upstream", mask_ratio=0.25, max_steps=2, eval_iters=0)
    mask_id = 48  # appended after the tiny tokenizer's 48 tokens
    # metrics.csv's realised mask fraction of each step against a count of the batches the trainer read
    logged = {int(r["step"]): float(r["mask_fraction"]) for r in read_metrics(tmp_path / "out") if r["loss"]}
    for step in (0, 1):
        inputs = [x for s, x in seen if s == step]
        assert logged[step + 1] == pytest.approx(sum(int((x == mask_id).sum()) for x in inputs) / sum(x.numel() for x in inputs))
        # the closed form: the upstream scheme masks max(1, int(T * ratio)) positions of every sequence
        assert logged[step + 1] == pytest.approx(max(1, int(BLOCK * 0.25)) / BLOCK)
    saved = random.getstate()
    try:
        for step, inputs in seen:
            random.seed(50 + step % 51)
            expected = sorted(random.sample(range(0, BLOCK - 1), max(1, int(BLOCK * 0.25))))
            for row in inputs:
                assert (row == mask_id).nonzero().flatten().tolist() == expected
    finally:
        random.setstate(saved)
    assert sorted({step for step, _ in seen}) == [0, 1] and len(seen) == 4


def test_activation_checkpointing_changes_nothing_but_memory(data, tmp_path):
    settings = dict(max_steps=3, eval_iters=0)
    run(data, tmp_path / "plain", **settings)
    run(data, tmp_path / "recomputed", activation_checkpointing=True, **settings)
    assert train_losses(tmp_path / "recomputed") == train_losses(tmp_path / "plain")
    keys = torch.load(tmp_path / "recomputed" / "step-00000003.pth", weights_only=True)["model"].keys()
    assert keys == torch.load(tmp_path / "plain" / "step-00000003.pth", weights_only=True)["model"].keys()


def test_compile_setting_compiles_the_blocks(data, tmp_path, monkeypatch):
    from lit_gpt import compile as block_compile

    compiled = []
    real = block_compile.compile_blocks

    def eager_compile(model, **kwargs):  # Dynamo tracing without Inductor's C++ build: seconds on a CPU
        compiled.append(model)
        return real(model, backend="eager")

    monkeypatch.setattr(block_compile, "compile_blocks", eager_compile)
    settings = dict(max_steps=2, eval_iters=0)
    run(data, tmp_path / "compiled", compile=True, **settings)
    run(data, tmp_path / "eager", **settings)
    assert len(compiled) == 1 and all(block_compile.is_compiled(b) for b in compiled[0].transformer.h)
    got, expected = train_losses(tmp_path / "compiled"), train_losses(tmp_path / "eager")
    assert [float(v) for v in got.values()] == pytest.approx([float(v) for v in expected.values()], rel=1e-5)


# ----------------------------------------------------------------------------- resume
def test_resume_reproduces_the_uninterrupted_run_bitwise(data, tmp_path, monkeypatch):
    full, split = tmp_path / "full", tmp_path / "split"
    settings = dict(max_steps=10, save_interval=3, eval_interval=5, keep_last=0)
    assert run(data, full, **settings) == 0
    assert run(data, split, stop_step=5, **settings) == 0
    assert train_losses(split) == {k: v for k, v in train_losses(full).items() if k <= 5}

    positions = []
    original = PackedStream.sample_at

    def spy(self, position):
        if self.shuffle:  # the training stream (validation is read unshuffled)
            positions.append(position)
        return original(self, position)

    monkeypatch.setattr(PackedStream, "sample_at", spy)
    assert run(data, split, resume="auto", **settings) == 0
    assert min(positions) == 5 * 8  # jumped to step 6's first block, read nothing before it

    assert train_losses(split) == train_losses(full)  # identical float reprs: bitwise
    assert val_losses(split) == val_losses(full)
    a = torch.load(full / "step-00000010.pth", weights_only=True)
    b = torch.load(split / "step-00000010.pth", weights_only=True)
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    exp_avg = lambda c: [s["exp_avg"] for s in c["optimizer"]["state"].values()]  # noqa: E731
    assert all(torch.equal(x, y) for x, y in zip(exp_avg(a), exp_avg(b)))


def test_signal_saves_a_checkpoint_and_stops(data, tmp_path, monkeypatch):
    import lit_gpt.pretrain.train as train_module

    calls = []
    real_step = train_module.train_step

    def step_then_signal(*args, **kwargs):
        calls.append(1)
        result = real_step(*args, **kwargs)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGUSR1)
        return result

    monkeypatch.setattr(train_module, "train_step", step_then_signal)
    out = tmp_path / "preempted"
    assert run(data, out, max_steps=10, save_interval=100) == 128 + signal.SIGUSR1
    assert (out / "step-00000003.pth").is_file()
    assert max(train_losses(out)) == 3
    monkeypatch.setattr(train_module, "train_step", real_step)
    assert run(data, out, max_steps=10, save_interval=100, resume="auto") == 0
    assert max(train_losses(out)) == 10


# ----------------------------------------------------------------------------- mixing prefixes
@pytest.fixture(scope="module")
def mixed_data(data, tmp_path_factory):
    """The corpus plus a second prefix `wiki` of 2 files x 16 blocks of another token pattern."""
    corpus = shutil.copytree(data[0], tmp_path_factory.mktemp("mixed") / "corpus")
    rng = random.Random(1)
    for i in range(2):  # random tokens among 5: every block unique and unlike a c4 document
        write_chunk(corpus / f"wiki_{i:010d}.bin", [rng.randrange(3, 8) for _ in range((BLOCK + 1) * 16)])
    return corpus, data[1]


def _blocks_by_source(corpus: Path) -> dict[tuple, str]:
    """Every block of every chunk file, read from the bytes (SPEC.md §4), with its prefix."""
    blocks = {}
    for path in sorted(corpus.glob("*.bin")):
        tokens = torch.frombuffer(bytearray(path.read_bytes()[24:]), dtype=torch.int16).tolist()
        n = BLOCK + 1
        for i in range(len(tokens) // n):
            blocks[tuple(tokens[i * n : (i + 1) * n])] = path.name.split("_")[0]
    assert len(blocks) == 64 + 32 + 8  # every block unique: c4, wiki, validation
    return blocks


def test_weighted_prefix_mix_follows_the_weights(mixed_data, tmp_path):
    from lit_gpt.pretrain.train import plan_run

    corpus, tokenizer = mixed_data
    plan = plan_run(PretrainArgs(**tiny_settings(corpus, tokenizer, tmp_path / "out", train_prefix="c4:0.7, wiki:0.3")))
    sources = _blocks_by_source(corpus)
    stream = plan.train_stream
    seen = [tuple(stream.sample_at(p).tolist()) for p in range(20_000)]
    names = [sources[block] for block in seen]
    assert set(names) == {"c4", "wiki"}
    assert abs(names.count("wiki") / len(names) - 0.3) < 0.01
    assert abs(names[:1000].count("wiki") / 1000 - 0.3) < 0.05
    # Each source's blocks: every one once per epoch of that source (64 c4 blocks, 32 wiki blocks).
    wiki = [block for block, name in zip(seen, names) if name == "wiki"]
    assert sorted(wiki[:32]) == sorted(b for b, n in sources.items() if n == "wiki")
    assert sorted(wiki[32:64]) == sorted(wiki[:32])
    # The same stream (a pure function of the seed) whatever opens it.
    again = plan_run(PretrainArgs(**tiny_settings(corpus, tokenizer, tmp_path / "out", train_prefix="c4:7,wiki:3")))
    assert all(torch.equal(again.train_stream.sample_at(p), torch.tensor(seen[p])) for p in range(0, 20_000, 97))


def test_resume_with_a_prefix_mix_reproduces_the_uninterrupted_run(mixed_data, tmp_path, monkeypatch):
    from lit_gpt.data import MixedStream

    corpus, tokenizer = mixed_data
    settings = dict(max_steps=10, save_interval=3, eval_interval=5, keep_last=0, train_prefix="c4:0.6,wiki:0.4")

    def mixed_run(out, **changes):
        return pretrain(PretrainArgs(**tiny_settings(corpus, tokenizer, out, **settings, **changes)))

    full, split = tmp_path / "full", tmp_path / "split"
    assert mixed_run(full) == 0
    assert mixed_run(split, stop_step=5) == 0
    positions = []
    original = MixedStream.sample_at
    monkeypatch.setattr(MixedStream, "sample_at", lambda self, p: positions.append(p) or original(self, p))
    assert mixed_run(split, resume="auto") == 0
    assert min(positions) == 5 * 8  # jumped to step 6's first block
    assert train_losses(split) == train_losses(full)
    state = torch.load(split / "step-00000010.pth", weights_only=True)["data"]["stream"]
    assert state["kind"] == "CombinedDataset" and state["sources"] == ["c4", "wiki"]
    assert sum(d["consumed"] for d in state["datasets"]) == 10 * 8


def test_nan_loss_stops_with_the_last_good_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "diverged"
    argv = to_argv(tiny_settings(*data, out, learning_rate=1e30, min_lr=0.0, warmup_steps=0, save_interval=1,
                                 eval_iters=0))
    assert _entry().main(argv) == 3
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NaN/inf" in err and "step-00000001.pth" in err, err
    kept = sorted(p.name for p in out.glob("step-*.pth"))
    assert kept == ["step-00000001.pth"]


# ----------------------------------------------------------------------------- bad input
BAD_INPUTS = {
    "no_data": (dict(train_data_dir="{empty}"), "no chunk files"),
    "mask_ratio_one": (dict(mask_ratio=1.0), "--mask_ratio 1.0: must be in [0, 1)"),
    "mask_ratio_negative": (dict(mask_ratio=-0.1), "must be in [0, 1)"),
    "mask_scheme_unknown": (dict(mask_scheme="shared"), "--mask_scheme 'shared': must be one of per_sequence, upstream"),
    "upstream_scheme_spans": (dict(mask_scheme="upstream", mask_span=5), "the upstream mask scheme masks single tokens"),
    "shared_masks_removed": (dict(mask_shared_across_batch=True), "removed (it shared masks only within a micro batch): "
                             "use --mask_scheme upstream"),
    "micro_batch": (dict(micro_batch_size=3), "--micro_batch_size 3 does not divide the per-device batch of 8"),
    "no_eos": (dict(tokenizer_dir="{no_eos}"), "no EOS"),
    "no_room_for_mask": (dict(vocab_from_tokenizer=False, model_overrides={**TINY_MODEL, "vocab_size": 48, "padding_multiple": 1}),
                         "no room for [MASK]"),
    "block_too_long": (dict(block_size=600), "--block_size 600"),
    "unknown_cli_key": (dict(mask_ration=0.1), "unrecognized arguments: --mask_ration"),
    "unknown_recipe_key": (dict(config="{bad_recipe}"), "unknown setting 'mask_ratoi' (did you mean mask_ratio"),
    "code_in_recipe": (dict(config="{code_recipe}"), "recipes hold data only"),
    "missing_resume": (dict(resume="{tmp}/nope.pth"), "no such checkpoint"),
    "fsdp_world_size_not_splitting_the_batch": (dict(strategy="fsdp", devices=3),
                                                "--global_batch_size 8 does not split over 3 processes"),
    "fsdp_no_shard": (dict(strategy="fsdp", fsdp_sharding="NO_SHARD"), "NO_SHARD: FSDP2 has no unsharded mode"),
    "sharded_without_fsdp": (dict(checkpoint_format="sharded"), "--checkpoint_format sharded needs FSDP"),
    "no_budget": (dict(max_steps="none"), "set a budget"),
    "data_from_other_tokenizer": (dict(train_data_dir="{other_corpus}"), "was prepared with the tokenizer in /elsewhere"),
    "mix_without_weight": (dict(train_prefix="c4:0.7,wiki"), "--train_prefix 'c4:0.7,wiki': entry 'wiki' is not prefix:weight"),
    "mix_bad_weight": (dict(train_prefix="c4:0.7,wiki:x"), "weight 'x' of 'wiki' is not a number"),
    "mix_negative_weight": (dict(train_prefix="c4:1,wiki:-1"), "must be a non-negative number"),
    "mix_zero_weights": (dict(train_prefix="c4:0,wiki:0"), "--train_prefix 'c4:0,wiki:0': the weights sum to 0"),
    "mix_twice": (dict(train_prefix="c4:1,c4:2"), "prefix 'c4' appears twice"),
    "mix_missing_prefix": (dict(train_prefix="c4:0.5,wiki:0.5"), "no chunk files wiki*.bin"),
    "mix_overlapping_prefixes": (dict(train_prefix="c4:0.5,c4_0000000001:0.5"), "matches both 'c4' and 'c4_0000000001'"),
}
if importlib.util.find_spec("wandb") is None:  # tensorboard is in requirements.txt, wandb is not
    BAD_INPUTS["logger_not_installed"] = (dict(logger="wandb"), "pip install wandb")


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_one_line_and_exit_code_2(case, data, tmp_path, capsys):
    changes, message = BAD_INPUTS[case]
    (tmp_path / "empty").mkdir()
    make_tokenizer(tmp_path / "no_eos", eos=False)
    (tmp_path / "bad_recipe.py").write_text("mask_ratoi = 0.1\n")
    (tmp_path / "code_recipe.py").write_text("import os\n")
    other = shutil.copytree(data[0], tmp_path / "other_corpus")
    (other / "manifest.json").write_text(json.dumps({"tokenizer": {"fingerprint": "0", "path": "/elsewhere"}}))
    places = {"empty": tmp_path / "empty", "no_eos": tmp_path / "no_eos", "bad_recipe": tmp_path / "bad_recipe.py",
              "code_recipe": tmp_path / "code_recipe.py", "tmp": tmp_path, "other_corpus": other}
    changes = {k: v.format(**places) if isinstance(v, str) else v for k, v in changes.items()}
    settings = tiny_settings(*data, tmp_path / "out", **changes)
    config = settings.pop("config", None)
    argv = (["--config", config] if config else []) + to_argv(settings)
    with pytest.raises(SystemExit) as exit_info:
        _entry().main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "out" / "metrics.csv").exists()


def test_bad_input_from_the_shell_has_no_traceback(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        ["sh", "run_one_node.sh", "../pretrained/meap_tiny.py", "--mask_ratio", "1.5"],  # the upstream command
        cwd=REPO / "MEAP-Pretrain", env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr == "error: --mask_ratio 1.5: must be in [0, 1)\n" or (
        "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    ), result.stderr


# ----------------------------------------------------------------------------- full disks, async checkpoints
@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_full_or_read_only_disk_at_the_start_is_one_line(data, tmp_path, monkeypatch, capsys, code):
    """The first files a run writes (the lock's holder, hyperparameters.yaml) go through the atomic helper:
    one line naming the folder, nothing left behind, nothing trained."""
    import lit_gpt.io.atomic as atomic

    real_open = open

    def failing_open(file, mode="r", *args, **kwargs):
        if ".partial-" in str(file) and "w" in mode:
            raise OSError(code, os.strerror(code))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(atomic, "open", failing_open, raising=False)
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        _entry().main(to_argv(tiny_settings(*data, out, max_steps=4, eval_iters=0)))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and os.strerror(code) in err, err
    assert f"--out_dir {out}" in err
    assert not out.exists()  # the folder this run created is removed again


def test_async_checkpoints_with_a_full_format_are_refused_before_launch(data, tmp_path, capsys):
    out = tmp_path / "run"
    for changes in ({"async_checkpoint": True}, {"async_checkpoint": True, "strategy": "fsdp", "checkpoint_format": "full"}):
        with pytest.raises(SystemExit) as exit_info:
            _entry().main(to_argv(tiny_settings(*data, out, max_steps=2, **changes)))
        assert exit_info.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--async_checkpoint" in err and "--checkpoint_format sharded" in err, err
        assert not out.exists()


# ----------------------------------------------------------------------------- signals
def _start_training(data, out: Path, **changes) -> subprocess.Popen:
    settings = tiny_settings(*data, out, **{"max_steps": 100000, "save_interval": 100000, "eval_iters": 0,
                                            "log_interval": 1, **changes})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, str(REPO / "MEAP-Pretrain" / "pretrain.py"), *to_argv(settings)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("sig", ["SIGUSR1", "SIGINT"])
def test_usr1_or_a_first_ctrl_c_saves_and_stops_a_running_trainer(sig, data, tmp_path):
    """SLURM's --signal=USR1@120 and a user's Ctrl-C: the running trainer saves a checkpoint of the
    step it finished and exits cleanly with 128 + the signal's number; the run resumes from it."""
    import time

    out = tmp_path / "run"
    process = _start_training(data, out)
    try:
        deadline = time.monotonic() + 120
        while len(read_metrics(out) if (out / "metrics.csv").is_file() else []) < 2:
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
            time.sleep(0.2)
        process.send_signal(getattr(signal, sig))
        stdout, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + getattr(signal, sig), stderr[-2000:]
    assert "Traceback" not in stderr and f"stopped by signal {sig}" in stdout
    saved = sorted(out.glob("step-*.pth"))
    assert len(saved) == 1 and int(saved[0].stem.split("-")[1]) >= 2
    step = int(saved[0].stem.split("-")[1])
    assert max(train_losses(out)) == step  # nothing logged after the saved step
    assert run(data, out, max_steps=step + 2, resume="auto") == 0


def test_num_nodes_without_a_launcher_is_refused_before_the_rendezvous(data, tmp_path, monkeypatch, capsys):
    for name in ("SLURM_NTASKS", "TORCHELASTIC_RUN_ID", "MASTER_ADDR", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(SystemExit) as exit_info:
        _entry().main(to_argv(tiny_settings(*data, tmp_path / "out", num_nodes=2)))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--num_nodes 2" in err and "MASTER_ADDR" in err, err


# ----------------------------------------------------------------------------- DDP on CPU (gloo), several processes (FSDP: test_parallel.py)
def _floats(losses):
    return {step: float(value) for step, value in losses.items()}


@pytest.mark.slow  # test_ddp.py's module-level mark
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


@pytest.mark.slow  # test_ddp.py's module-level mark
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
