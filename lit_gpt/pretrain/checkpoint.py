"""Training checkpoints, `out_dir/step-XXXXXXXX.pth`, written whole or not at all: one file (the dict
`train.save` builds), or under FSDP with format "sharded" a torch.distributed.checkpoint folder plus
meta.pt. Either resumes with any number of processes and is read through allow-list loaders."""

from __future__ import annotations

import random
import re
import sys
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import (StateDictOptions, get_model_state_dict, get_optimizer_state_dict,
                                                     set_model_state_dict, set_optimizer_state_dict)

from lit_gpt.errors import UserError, first_line
from lit_gpt.io import atomic
from lit_gpt.io import sharded_checkpoint as sharded
from lit_gpt.io.safe_load import load_torch_file

FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8})\.pth$")
_LEFTOVER = re.compile(r"^\.step-\d{8}\.pth\.(partial|old)-\w+$")
# The Config fields that decide the shapes of the weights.
_SHAPE_SETTINGS = ("padded_vocab_size", "n_layer", "n_embd", "n_head", "n_query_groups", "head_size",
                   "intermediate_size", "bias")


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / f"step-{step:08d}.pth"


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the finished checkpoints in out_dir, oldest first (temporaries ignored)."""
    out_dir = Path(out_dir)
    paths = out_dir.iterdir() if out_dir.is_dir() else ()
    return sorted((int(m.group(1)), p) for p in paths if (m := _NAME.match(p.name)))


def resolve_resume(resume: Optional[str], out_dir: str | Path, config=None) -> Optional[Path]:
    """The checkpoint to resume from: None, `auto` (the newest readable one in out_dir, None if there
    is none) or a path. Each candidate is read (memory-mapped) here, before any process starts, and
    its model compared with `config`'s."""
    existing = list_checkpoints(out_dir)
    meta = None
    if resume is None:
        if existing:
            raise UserError(
                f"--out_dir {out_dir} already holds checkpoints (newest {existing[-1][1].name}): pass --resume auto "
                "to continue that run, or choose another --out_dir"
            )
        return None
    if resume == "auto":
        for _, path in reversed(existing):
            try:
                meta = check_readable(path)
                break
            except UserError as err:
                print(f"--resume auto: skipping {err}", file=sys.stderr)  # and trying the one before
        else:
            if existing:
                raise UserError(f"--resume auto: no checkpoint in {out_dir} can be read "
                                f"({', '.join(p.name for _, p in reversed(existing))}); "
                                "pass --resume PATH or choose another --out_dir")
            return None
    else:
        path = Path(resume).expanduser()
        if not path.exists():
            raise UserError(f"--resume {resume}: no such checkpoint")
    try:
        meta = meta or check_readable(path)
        if config is not None:
            check_same_model(meta, config, path)
    except UserError as err:
        raise UserError(f"cannot resume from {err}") from None
    return path


def check_readable(path: Path) -> dict[str, Any]:
    """Reads a checkpoint's file (or a sharded folder's index and metadata) through the allow-list
    loader, without restoring it; -> its metadata. UserError naming the path when it is not a
    checkpoint of this trainer."""
    path = Path(path)
    meta = sharded.read_meta(path) if path.is_dir() else load_torch_file(path)
    if not isinstance(meta, dict) or not path.is_dir() and (not isinstance(meta.get("model"), dict) or "optimizer" not in meta):
        raise UserError(f"{path}: not a training checkpoint (no model and optimizer state)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: not a checkpoint of this trainer (format_version missing)")
    return meta


def check_same_model(meta: dict[str, Any], config, path: Path) -> None:
    """Names the model setting in which the checkpoint differs from the run (instead of the state
    dict's "size mismatch" list, once the run has started)."""
    recorded = meta.get("config")
    if not isinstance(recorded, dict):
        return
    run = config.to_dict()
    differ = [f"{key} {recorded[key]} (checkpoint) vs {run[key]} (this run)" for key in _SHAPE_SETTINGS
              if key in recorded and recorded[key] != run[key]]
    if differ:
        raise UserError(f"{path}: its model was saved as {recorded.get('name', '?')!r} with other "
                        f"settings: {', '.join(differ)}; set --model_name / --model_overrides (or the tokenizer, for "
                        "the vocabulary) as when it was saved")


def _unwrap(model, optimizer):
    from lightning.fabric.wrappers import _unwrap_objects

    return _unwrap_objects(model), _unwrap_objects(optimizer)


def _describe_error(err: BaseException) -> tuple[str, bool]:
    """-> (one line for the innermost error, whether it is an OSError: the user's disk, not a bug)."""
    # torch.distributed.checkpoint wraps each process's exception in a CheckpointException.
    for failure in getattr(err, "failures", {}).values():
        inner = failure[0] if isinstance(failure, tuple) else failure  # (exception, traceback summary)
        if isinstance(inner, BaseException):
            return _describe_error(inner)
    if isinstance(err, OSError):
        return err.strerror or str(err), True
    return (f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__), False


_FAILURES = (Exception, dcp.CheckpointException)  # CheckpointException is no Exception subclass


def _write_file(path: Path, obj: Any) -> None:
    # Through a Python file: a full disk is an OSError here, where torch.save(obj, path) raises
    # a RuntimeError from its C++ writer that could not be told from a bug.
    with open(path, "wb") as f:
        torch.save(obj, f)


class Checkpointer:
    """Writes a run's checkpoints (`save` on every process at the same step) under a hidden name beside
    the destination (lit_gpt.io.atomic), fsynced and renamed into place once every process has written
    its part: a crash or a full disk never leaves half a checkpoint for `--resume auto` to pick.
    `sharded`: each process writes its shards (no process holds the whole state); `asynchronous`: in a
    background thread, from a copy taken at `save`, on a process group of its own, counted as saved
    only at the next `save` or `wait`."""

    def __init__(self, fabric, sharded_format: bool = False, asynchronous: bool = False):
        self.fabric, self.sharded, self.asynchronous = fabric, sharded_format, asynchronous
        self._pending: Optional[tuple[Path, Path, Any, Optional[BaseException]]] = None
        self._group = None

    def save(self, path: Path, state: dict[str, Any], wait: bool = True) -> list[Path]:
        """Starts writing `path`; -> the checkpoints that are complete now (oldest first)."""
        done = self.wait()
        fabric = self.fabric
        module, optimizer = _unwrap(state["model"], state["optimizer"])
        meta = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
        tmp = atomic.staging_path(path, "save")  # one name that every process agrees on
        if fabric.is_global_zero:
            path.parent.mkdir(parents=True, exist_ok=True)
            for stale in path.parent.iterdir():  # left by a process that was killed while writing
                if _LEFTOVER.match(stale.name):
                    atomic.remove(stale)
        fabric.barrier()
        # Sharded: each process's own shards; full: gathered on rank 0's CPU only.
        options = StateDictOptions(full_state_dict=not self.sharded, cpu_offload=not self.sharded)
        tensors = {"model": get_model_state_dict(module, options=options),
                   "optimizer": get_optimizer_state_dict(module, optimizer, options=options)}
        error = future = None  # an error is reported on every process by _finish
        try:
            if fabric.is_global_zero and self.sharded:
                tmp.mkdir()
                _write_file(tmp / sharded.META_FILE, meta)
            elif fabric.is_global_zero:
                _write_file(tmp, {**tensors, **meta})
        except _FAILURES as err:
            error = err
        if self.sharded:
            if self.asynchronous and self._group is None:
                # The background writes must not interleave with the training's collectives.
                self._group = torch.distributed.new_group(backend="gloo")
            try:  # every process takes part, whatever happened above, or the others would wait forever
                writer = dcp.FileSystemWriter(tmp, sync_files=True)
                save = dcp.async_save if self.asynchronous else dcp.save
                result = save(tensors, storage_writer=writer, process_group=self._group)
                future = result if self.asynchronous else None
            except _FAILURES as err:
                error = error or err
        if future is not None:
            self._pending = (path, tmp, future, error)
            return done + (self.wait() if wait else [])
        return done + [self._finish(path, tmp, error)]

    def wait(self) -> list[Path]:
        """Waits for the checkpoint being written in the background; -> it, once complete."""
        if self._pending is None:
            return []
        path, tmp, future, error = self._pending
        self._pending = None
        try:
            future.result()
        except _FAILURES as err:
            error = error or err
        return [self._finish(path, tmp, error)]

    def _finish(self, path: Path, tmp: Path, error: Optional[BaseException]) -> Path:
        """Every process's outcome agreed on; rank 0 renames the whole checkpoint into place or removes it."""
        fabric = self.fabric
        failure = None if error is None else _describe_error(error)
        if fabric.world_size > 1:  # the first process's error, on every process, so all stop together
            failures: list[Any] = [None] * fabric.world_size
            torch.distributed.all_gather_object(failures, failure)
            failure = next((f for f in failures if f), None)
        if fabric.is_global_zero:
            try:
                if failure is None:
                    atomic.commit(tmp, path)
            except OSError as err:
                failure = (err.strerror or str(err), True)
            if failure is not None:
                atomic.remove(tmp)
        fabric.barrier()
        if failure and not failure[1]:
            raise RuntimeError(f"writing checkpoint {path} failed: {failure[0]}")
        if failure:
            raise UserError(f"cannot write checkpoint {path}: {failure[0]} (nothing partial was left; earlier "
                            "checkpoints are intact)")
        return path


def prune_checkpoints(out_dir: str | Path, keep_last: int, saved: Path) -> None:
    """Deletes all but the newest keep_last checkpoints up to `saved`, the one just written (keep_last 0
    keeps all). Later ones, left by a run that went further (perhaps unreadable, which is why this run
    resumed before them), are not counted: they must not push out the checkpoints this run can use. Rank 0 only."""
    upto = [path for _, path in list_checkpoints(out_dir) if path.name <= Path(saved).name]
    for path in upto[:-keep_last] if keep_last > 0 else []:
        atomic.remove(path)


def _keyed_by_name(optimizer_state: dict[str, Any], module) -> dict[str, Any]:
    """An optimizer state dict keyed by parameter index (torch's own format, as earlier versions of
    this trainer saved) re-keyed by parameter name, the form set_optimizer_state_dict reads."""
    state = optimizer_state.get("state", {})
    if not state or not all(isinstance(k, int) for k in state):
        return optimizer_state
    names = [name for name, _ in module.named_parameters()]
    return {
        "state": {names[i]: v for i, v in state.items()},
        "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in optimizer_state["param_groups"]],
    }


def load_checkpoint(fabric, path: Path, model, optimizer) -> dict[str, Any]:
    """Restores model and optimizer in place from a full file or a sharded folder, whatever the number
    of processes that wrote it (its model was checked against the run's by `resolve_resume`); returns
    the rest of the checkpoint."""
    module, optim = _unwrap(model, optimizer)
    path = Path(path)
    try:
        meta = check_readable(path)
        if path.is_dir():  # DTensors of this run's sharding, filled from whatever layout wrote the shards
            state = {"model": get_model_state_dict(module), "optimizer": get_optimizer_state_dict(module, optim)}
            sharded.load_sharded(state, path, no_dist=fabric.world_size == 1)
        else:
            state = {"model": meta["model"], "optimizer": _keyed_by_name(meta["optimizer"], module)}
            meta = {k: v for k, v in meta.items() if k not in state}
        options = StateDictOptions(full_state_dict=not path.is_dir())
        set_model_state_dict(module, state["model"], options=options)
        set_optimizer_state_dict(module, optim, state["optimizer"], options=options)
        return meta
    except UserError as err:
        raise UserError(f"cannot resume from {err}") from None
    except (KeyError, RuntimeError, ValueError, OSError, dcp.CheckpointException) as err:
        raise UserError(f"cannot resume from {path}: {_describe_error(err)[0]}") from None


# ----------------------------------------------------------------------------- RNG state
def capture_rng() -> dict[str, Any]:
    """This process's RNG states, as tensors and plain containers (loadable with weights_only)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def gather_rng(fabric) -> list[dict[str, Any]]:
    """Every process's RNG state, in rank order (only rank 0 writes the checkpoint)."""
    mine = capture_rng()
    if fabric.world_size == 1:
        return [mine]
    gathered: list[Any] = [None] * fabric.world_size
    torch.distributed.all_gather_object(gathered, mine)
    return gathered


def load_initial_weights(path: str, config) -> dict[str, torch.Tensor]:
    """The weights `--init_from` names (memory-mapped), checked key by key and shape by shape
    against the run's model, so a mismatch stops the run before it starts."""
    from lit_gpt.convert.checkpoint import check_state_dict, read_lit_state_dict

    sd, meta = read_lit_state_dict(path)
    recorded = meta.get("config", {}).get("name") if isinstance(meta.get("config"), dict) else None
    held = f" (it holds {recorded!r})" if recorded else ""
    check_state_dict(sd, config, what=f"--init_from {path} does not fit the run's model {config.name!r}{held}; "
                                      "choose --model_name / --model_overrides to match")
    return sd
