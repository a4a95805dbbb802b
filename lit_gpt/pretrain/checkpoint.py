"""Training checkpoints: `out_dir/step-XXXXXXXX.pth`, written whole or not at all.

A checkpoint is one dict: "model" (state dict), "optimizer", "step", "tokens", "data" (the
stream position), "rng" (per process), "config" (the model Config as a plain dict, so conversion
and evaluation need no model name), "tokenizer_dir", "tokenizer" (vocab size, bos/eos/mask ids),
"args" (every run setting) and "format_version". Everything loads with torch.load(weights_only=True).
With FSDP and checkpoint_format "sharded", step-XXXXXXXX.pth is a folder instead: shards of
"model" and "optimizer" (torch.distributed.checkpoint) and meta.pt with the rest. Either format
resumes with any number of processes; optimizer state is keyed by parameter name.
"""

from __future__ import annotations

import os
import pickle
import random
import re
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from lit_gpt.io import sharded_checkpoint as sharded
from lit_gpt.errors import UserError

FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8})\.pth$")
_LEFTOVER = re.compile(r"^\.step-\d{8}\.pth\.(tmp|old)$")


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / f"step-{step:08d}.pth"


def list_checkpoints(out_dir: str | Path) -> list[tuple[int, Path]]:
    """(step, path) of the finished checkpoints in out_dir, oldest first (temporaries ignored)."""
    out_dir = Path(out_dir)
    if not out_dir.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in out_dir.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def resolve_resume(resume: Optional[str], out_dir: str | Path) -> Optional[Path]:
    """The checkpoint to resume from: None, `auto` (the newest readable one in out_dir, None if there
    is none) or a path. Each candidate is read (memory-mapped) here, before any process starts."""
    if resume is None:
        existing = list_checkpoints(out_dir)
        if existing:
            raise UserError(
                f"--out_dir {out_dir} already holds checkpoints (newest {existing[-1][1].name}): pass --resume auto "
                "to continue that run, or choose another --out_dir"
            )
        return None
    if resume == "auto":
        existing = list_checkpoints(out_dir)
        skipped = []
        for _, path in reversed(existing):
            try:
                check_readable(path)
                return path
            except UserError as err:
                print(f"--resume auto: skipping {err}", file=sys.stderr)  # and trying the one before
                skipped.append(path.name)
        if skipped:
            raise UserError(f"--resume auto: no checkpoint in {out_dir} can be read ({', '.join(skipped)}); "
                            "pass --resume PATH or choose another --out_dir")
        return None
    path = Path(resume).expanduser()
    if not path.exists():
        raise UserError(f"--resume {resume}: no such checkpoint")
    try:
        check_readable(path)
    except UserError as err:
        raise UserError(f"cannot resume from {err}") from None
    return path


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def _read_file(path: Path) -> Any:
    """torch.load(weights_only=True), memory-mapped; a UserError naming the file on any failure."""
    if path.stat().st_size == 0:
        raise UserError(f"{path}: the file is empty, not a checkpoint")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. a pickle protocol notice: the error below says it all
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as err:
                if "mmap" not in str(err):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)  # legacy (pre-zip) files
    except pickle.UnpicklingError as err:
        unsafe = re.search(r"GLOBAL (\S+)", str(err))
        if unsafe:
            raise UserError(f"{path}: refers to {unsafe.group(1)}, which is not loaded for safety (a checkpoint "
                            "holds only tensors and plain containers)") from None
        raise UserError(f"{path}: not a PyTorch checkpoint (unreadable pickle data)") from None
    except Exception as err:  # a truncated or foreign file: torch raises several types
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({_first_line(err)})") from None


def _read_sharded_meta(path: Path) -> dict[str, Any]:
    if not sharded.is_sharded_checkpoint(path):
        raise UserError(f"{path}: a directory that is not a sharded checkpoint (no {sharded.INDEX_FILE})")
    try:
        sharded.read_index(path)
    except pickle.UnpicklingError as err:
        raise UserError(f"{path}: {err}") from None
    except Exception as err:
        raise UserError(f"{path}: not a readable sharded checkpoint ({_first_line(err)})") from None
    if not (path / sharded.META_FILE).is_file():
        raise UserError(f"{path}: a sharded checkpoint without its {sharded.META_FILE}")
    meta = _read_file(path / sharded.META_FILE)
    if not isinstance(meta, dict):
        raise UserError(f"{path / sharded.META_FILE}: holds a {type(meta).__name__}, not a dict")
    return meta


def check_readable(path: Path) -> dict[str, Any]:
    """Reads a checkpoint's file (or a sharded folder's index and metadata) without restoring it;
    -> its metadata. UserError naming the path when it is not a checkpoint of this trainer."""
    path = Path(path)
    if path.is_dir():
        meta = _read_sharded_meta(path)
    else:
        meta = _read_file(path)
        if not isinstance(meta, dict) or not isinstance(meta.get("model"), dict) or "optimizer" not in meta:
            raise UserError(f"{path}: not a training checkpoint (no model and optimizer state)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: not a checkpoint of this trainer (format_version missing)")
    return meta


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # some platforms cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_file(path: Path, obj: Any) -> None:
    """torch.save straight into `path` (no staging in $TMPDIR), flushed and fsynced."""
    with open(path, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _unwrap(model, optimizer):
    from lightning.fabric.wrappers import _unwrap_objects

    return _unwrap_objects(model), _unwrap_objects(optimizer)


def _agree_on_error(fabric, error: Optional[tuple[str, bool]]) -> Optional[tuple[str, bool]]:
    """The first process's error, on every process (so all stop together instead of one hanging)."""
    if fabric.world_size == 1:
        return error
    errors: list[Any] = [None] * fabric.world_size
    torch.distributed.all_gather_object(errors, error)
    return next((e for e in errors if e), None)


def _innermost(err: BaseException) -> BaseException:
    # torch.distributed.checkpoint wraps each process's exception in a CheckpointException.
    for failure in getattr(err, "failures", {}).values():
        inner = failure[0] if isinstance(failure, tuple) else failure  # (exception, traceback summary)
        if isinstance(inner, BaseException):
            return _innermost(inner)
    return err


def _describe_error(err: BaseException) -> str:
    err = _innermost(err)
    if isinstance(err, OSError):
        return err.strerror or str(err)
    return _first_line(err)


def _write_error(err: BaseException) -> tuple[str, bool]:
    """-> (what failed, whether it is the environment's): an OSError (full disk, permissions, quota) is
    the user's to fix and becomes one line; anything else is a bug, raised with a traceback."""
    inner = _innermost(err)
    return _describe_error(inner), isinstance(inner, OSError)


def save_checkpoint(fabric, path: Path, state: dict[str, Any], sharded_format: bool = False) -> None:
    """Writes state["model"], state["optimizer"] (full tensors, or shards with `sharded_format`) and the
    rest of `state` as metadata. Must be called on every process.

    The checkpoint is written beside its destination under a temporary name (`.step-XXXXXXXX.pth.tmp`,
    a file or a folder), flushed and fsynced, then renamed and the directory fsynced: a crash or a
    full disk never leaves a half checkpoint that `--resume auto` would pick. On a write error the
    temporary is removed, earlier checkpoints are untouched, and a UserError names the path.
    """
    from torch.distributed.checkpoint import CheckpointException
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict, get_optimizer_state_dict

    module, optimizer = _unwrap(state["model"], state["optimizer"])
    meta = {k: v for k, v in state.items() if k not in ("model", "optimizer")}
    tmp = path.with_name(f".{path.name}.tmp")
    if fabric.is_global_zero:
        path.parent.mkdir(parents=True, exist_ok=True)
        for stale in path.parent.iterdir():  # left by a process that was killed while writing
            if _LEFTOVER.match(stale.name):
                _remove(stale)
    fabric.barrier()
    error = None
    if sharded_format:
        from torch.distributed.checkpoint import FileSystemWriter, save

        shards = {"model": get_model_state_dict(module), "optimizer": get_optimizer_state_dict(module, optimizer)}
        try:
            save(shards, storage_writer=FileSystemWriter(tmp, sync_files=True))
            if fabric.is_global_zero:
                _write_file(tmp / sharded.META_FILE, meta)
        except (Exception, CheckpointException) as err:  # reported on every process below
            error = _write_error(err)
    else:
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)  # gathered on rank 0 only
        full = {"model": get_model_state_dict(module, options=options),
                "optimizer": get_optimizer_state_dict(module, optimizer, options=options)}
        if fabric.is_global_zero:
            try:
                _write_file(tmp, {**full, **meta})
            except Exception as err:  # reported on every process below
                error = _write_error(err)
    error = _agree_on_error(fabric, error)
    if fabric.is_global_zero:
        if error:
            _remove(tmp)
        else:
            old = path.with_name(f".{path.name}.old")
            if path.exists():  # os.replace cannot replace a non-empty folder: move it aside first
                _remove(old)
                os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
            _fsync_dir(path.parent)
    fabric.barrier()
    if error and not error[1]:
        raise RuntimeError(f"writing checkpoint {path} failed: {error[0]}")
    if error:
        raise UserError(f"cannot write checkpoint {path}: {error[0]} (nothing partial was left; earlier "
                        "checkpoints are intact)")


def prune_checkpoints(out_dir: str | Path, keep_last: int) -> None:
    """Deletes all but the newest keep_last checkpoints (keep_last 0 keeps all). Rank 0 only."""
    if keep_last <= 0:
        return
    for _, path in list_checkpoints(out_dir)[:-keep_last]:
        _remove(path)


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
    of processes that wrote it; returns the rest of the checkpoint."""
    from torch.distributed.checkpoint import CheckpointException
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    module, optim = _unwrap(model, optimizer)
    path = Path(path)
    try:
        if path.is_dir():
            meta = check_readable(path)
            state = {"model": get_model_state_dict(module), "optimizer": get_optimizer_state_dict(module, optim)}
            sharded.load_sharded(state, path, no_dist=fabric.world_size == 1)
            set_model_state_dict(module, state["model"])
            set_optimizer_state_dict(module, optim, state["optimizer"])
            return meta
        checkpoint = dict(check_readable(path))
        options = StateDictOptions(full_state_dict=True)
        set_model_state_dict(module, checkpoint.pop("model"), options=options)
        set_optimizer_state_dict(module, optim, _keyed_by_name(checkpoint.pop("optimizer"), module), options=options)
        return checkpoint
    except UserError as err:
        raise UserError(f"cannot resume from {err}") from None
    except (KeyError, RuntimeError, ValueError, OSError, CheckpointException) as err:
        raise UserError(f"cannot resume from {path}: {_describe_error(err)}") from None


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
