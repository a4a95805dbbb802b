"""Checkpoints (lit_gpt/pretrain/checkpoint.py): full disks, unreadable or foreign files, another model shape, --init_from."""

import math
import os
import random
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from lit_gpt.config import Config
from lit_gpt.model import GPT
from lit_gpt.data import PackedStream
from tests.pretrain_helpers import BLOCK, TINY_MODEL, tiny_settings, to_argv, train_losses
from tests.pretrain.helpers import _entry, run


pytestmark = pytest.mark.usefixtures("one_thread")


def _fail_with_full_disk_at(step: int, monkeypatch):
    """torch.save that writes part of the checkpoint of `step`, then fails as a full disk does."""
    import errno

    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and obj.get("step") == step:
            f.write(b"half a checkpoint" * 64)
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_full_disk_is_one_line_and_keeps_the_previous_checkpoint(data, tmp_path, monkeypatch, capsys):
    import tempfile

    # Checkpoints are written beside their destination: a $TMPDIR that does not exist is never used.
    monkeypatch.setenv("TMPDIR", str(tmp_path / "no_such_tmp"))
    monkeypatch.setattr(tempfile, "tempdir", None)
    out = tmp_path / "run"
    settings = tiny_settings(*data, out, max_steps=8, save_interval=4, keep_last=0, eval_iters=0)
    _fail_with_full_disk_at(8, monkeypatch)
    with pytest.raises(SystemExit) as exit_info:
        _entry().main(to_argv(settings))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and "step-00000008.pth" in err, err
    assert sorted(p.name for p in out.iterdir() if "step" in p.name) == ["step-00000004.pth"]  # no .tmp left

    monkeypatch.undo()
    reference = tmp_path / "reference"
    assert run(data, reference, **{k: v for k, v in settings.items() if k in ("max_steps", "save_interval",
                                                                            "keep_last", "eval_iters")}) == 0
    assert run(data, out, resume="auto", max_steps=8, save_interval=4, keep_last=0, eval_iters=0) == 0
    assert train_losses(out) == train_losses(reference)  # the kept checkpoint was whole: bitwise


class _RunsCode:
    """A pickle whose loading would run a shell command (creating the marker file)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _unreadable(kind: str, where: Path, marker: Path) -> Path:
    path = where / "step-00000008.pth"
    if kind == "random_bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "not_a_checkpoint_dir":
        path.mkdir()
        (path / "notes.txt").write_text("not a checkpoint")
    elif kind == "code_in_zip":  # torch.save's zip format with a code-running object inside
        torch.save({"model": {}, "optimizer": _RunsCode(marker), "format_version": 1}, path)
    elif kind == "code_in_pickle":  # a plain pickle file
        import pickle

        path.write_bytes(pickle.dumps({"model": _RunsCode(marker)}))
    return path


UNREADABLE = ("random_bytes", "empty", "not_a_checkpoint_dir", "code_in_zip", "code_in_pickle")


@pytest.mark.parametrize("kind", UNREADABLE)
def test_resume_from_an_unreadable_checkpoint_is_one_line(kind, data, tmp_path, capsys):
    marker = tmp_path / "code_ran"
    (tmp_path / "ckpts").mkdir()
    path = _unreadable(kind, tmp_path / "ckpts", marker)
    with pytest.raises(SystemExit) as exit_info:
        _entry().main(to_argv(tiny_settings(*data, tmp_path / "out", resume=str(path))))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and str(path) in err and "Traceback" not in err, err
    assert err.startswith(f"error: cannot resume from {path}: ") and err.count(str(path)) == 1, err  # one sentence
    assert kind != "empty" or "the file is empty" in err, err
    assert kind != "not_a_checkpoint_dir" or f"{path}: a directory that is not a sharded checkpoint" in err, err
    assert not marker.exists()
    assert not (tmp_path / "out" / "metrics.csv").exists()


@pytest.mark.parametrize("resume", ["path", "auto"])
def test_a_sharded_checkpoint_with_a_damaged_meta_file_is_named_in_one_sentence(resume, data, tmp_path, capsys):
    from torch.distributed.checkpoint import FileSystemWriter, save

    out = tmp_path / "out"
    path = out / "step-00000008.pth"
    save({"model.w": torch.zeros(2)}, storage_writer=FileSystemWriter(str(path)), no_dist=True)  # a readable index
    (path / "meta.pt").write_bytes(b"garbage\n")
    with pytest.raises(SystemExit) as exit_info:
        _entry().main(to_argv(tiny_settings(*data, out, resume=str(path) if resume == "path" else "auto")))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    named = path / "meta.pt"
    line = (f"--resume auto: skipping {named}: could not read it as a PyTorch checkpoint" if resume == "auto"
            else f"error: cannot resume from {named}: could not read it as a PyTorch checkpoint")
    assert err.startswith(line) and err.count(str(named)) == 1 and "Traceback" not in err, err
    assert not (out / "metrics.csv").exists()


def test_resume_auto_skips_an_unreadable_newest_checkpoint(data, tmp_path, capsys):
    out = tmp_path / "run"
    settings = dict(max_steps=8, save_interval=4, keep_last=0, eval_iters=0)
    assert run(data, out, **settings) == 0
    uninterrupted = train_losses(out)
    marker = tmp_path / "code_ran"
    (out / "step-00000008.pth").unlink()
    _unreadable("code_in_zip", out, marker)
    capsys.readouterr()
    assert run(data, out, resume="auto", **settings) == 0
    captured = capsys.readouterr()
    assert "skipping" in captured.err and "step-00000008.pth" in captured.err and "for safety" in captured.err
    assert "resumed from" in captured.out and "step-00000004.pth" in captured.out
    assert train_losses(out) == uninterrupted and not marker.exists()


def test_existing_checkpoints_are_not_overwritten_without_resume(data, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "step-00000004.pth").write_bytes(b"precious")
    with pytest.raises(SystemExit):
        _entry().main(to_argv(tiny_settings(*data, out)))
    assert "--resume auto" in capsys.readouterr().err
    assert (out / "step-00000004.pth").read_bytes() == b"precious"


def test_init_from_starts_from_the_given_weights_and_refuses_another_shape(data, tmp_path, capsys):
    corpus, tokenizer = data
    first = tmp_path / "first"
    assert run(data, first, max_steps=8, save_interval=8) == 0
    source = first / "step-00000008.pth"
    trained = torch.load(source, weights_only=True)

    # Logging every step with lr 0: the first logged loss is the source model's own loss on the
    # step's blocks, computed here independently with GPT + F.cross_entropy.
    second = tmp_path / "second"
    assert run(data, second, max_steps=1, learning_rate=1e-12, min_lr=0.0, log_interval=1, mask_ratio=0.0,
               init_from=str(source)) == 0
    model = GPT(Config.from_dict(trained["config"]))
    model.load_state_dict(trained["model"])
    settings = tiny_settings(corpus, tokenizer, second)
    stream = PackedStream(sorted(corpus.glob("c4_*.bin")), BLOCK, seed=settings["seed"], shuffle=True, wrap=True)
    blocks = torch.stack([stream.sample_at(i) for i in range(settings["global_batch_size"])]).long()
    with torch.no_grad():
        logits = model(blocks[:, :-1])
    expected = F.cross_entropy(logits.flatten(0, 1), blocks[:, 1:].flatten()).item()
    assert math.isclose(float(train_losses(second)[1]), expected, rel_tol=1e-5)

    # A checkpoint of another shape stops the run before it starts, naming both models.
    with pytest.raises(SystemExit) as exit_info:
        _entry().main(to_argv(tiny_settings(corpus, tokenizer, tmp_path / "third", init_from=str(source),
                                            model_overrides={**TINY_MODEL, "n_layer": 3})))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --init_from") and "missing keys" in err and err.count("\n") == 1


def test_resuming_with_another_model_shape_names_the_setting(data, tmp_path, capsys):
    """Not torch's "Error(s) in loading state_dict": the setting that differs, with both values, before launch."""
    from tests.pretrain_helpers import TINY_MODEL

    out = tmp_path / "run"
    assert run(data, out, max_steps=4, eval_iters=0) == 0
    wider = {**TINY_MODEL, "n_embd": TINY_MODEL["n_embd"] * 2}
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        _entry().main(to_argv(tiny_settings(*data, out, max_steps=8, eval_iters=0, resume="auto", model_overrides=wider)))
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and "state_dict" not in err, err
    assert f"n_embd {TINY_MODEL['n_embd']} (checkpoint) vs {wider['n_embd']} (this run)" in err and "step-00000004.pth" in err


def test_keep_last_counts_only_checkpoints_up_to_the_one_just_saved(tmp_path):
    from lit_gpt.pretrain.checkpoint import prune_checkpoints

    # A run resumed from step 4 (step 8 unreadable) has just saved step 6: keeping "the newest one"
    # must keep step 6, not the unreadable step 8 while deleting everything usable.
    for step in (2, 4, 6, 8):
        (tmp_path / f"step-{step:08d}.pth").write_bytes(b"x")
    prune_checkpoints(tmp_path, 1, tmp_path / "step-00000006.pth")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step-00000006.pth", "step-00000008.pth"]
    prune_checkpoints(tmp_path, 0, tmp_path / "step-00000006.pth")  # 0 keeps all
    assert len(list(tmp_path.iterdir())) == 2


@pytest.mark.filterwarnings("ignore:torch.distributed is disabled")  # dcp.save in one process, as meant
@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_resume_auto_skips_a_sharded_checkpoint_with_a_damaged_shard_file(tmp_path, capsys, damage):
    from torch.distributed.checkpoint import FileSystemWriter, save

    from lit_gpt.pretrain.checkpoint import FORMAT_VERSION, resolve_resume

    for step in (4, 8):
        folder = tmp_path / f"step-{step:08d}.pth"
        save({"model.w": torch.arange(1000.0)}, storage_writer=FileSystemWriter(str(folder)), no_dist=True)
        torch.save({"format_version": FORMAT_VERSION, "step": step}, folder / "meta.pt")
    shard = tmp_path / "step-00000008.pth" / "__0_0.distcp"
    if damage == "truncated":  # as a disk that filled up or failed after the rename leaves it
        shard.write_bytes(shard.read_bytes()[:100])
    else:
        shard.unlink()
    assert resolve_resume("auto", tmp_path) == tmp_path / "step-00000004.pth"
    err = capsys.readouterr().err
    assert err.startswith(f"--resume auto: skipping {shard}: {damage}") and err.count("\n") == 1, err
