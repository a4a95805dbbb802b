"""Training checkpoints: `out_dir/step-XXXXXXXX.pth`, written whole or not at all.

A checkpoint is one dict: "model" (state dict), "optimizer", "step", "tokens", "data" (the
stream position), "rng" (per process), "config" (the model Config as a plain dict, so conversion
and evaluation need no model name), "tokenizer_dir", "tokenizer" (vocab size, bos/eos/mask ids),
"args" (every run setting) and "format_version". Everything loads with torch.load(weights_only=True).
With FSDP and checkpoint_format "sharded", step-XXXXXXXX.pth is a folder of shards instead.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from lit_gpt.cli import UserError

FORMAT_VERSION = 1
_NAME = re.compile(r"^step-(\d{8})\.pth$")


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
    """The checkpoint to resume from: None, `auto` (newest in out_dir, None if there is none) or a path."""
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
        return existing[-1][1] if existing else None
    path = Path(resume).expanduser()
    if not path.exists():
        raise UserError(f"--resume {resume}: no such checkpoint")
    return path


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def save_checkpoint(fabric, path: Path, state: dict[str, Any]) -> None:
    """Writes under a temporary name, then renames, so a crash never leaves a half checkpoint
    that `--resume auto` would pick. Must be called on every process."""
    tmp = path.with_name(f".{path.name}.tmp")
    if fabric.is_global_zero:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove(tmp)
    fabric.barrier()
    fabric.save(tmp, state)
    if fabric.is_global_zero:
        _remove(path)
        os.replace(tmp, path)
    fabric.barrier()


def prune_checkpoints(out_dir: str | Path, keep_last: int) -> None:
    """Deletes all but the newest keep_last checkpoints (keep_last 0 keeps all). Rank 0 only."""
    if keep_last <= 0:
        return
    for _, path in list_checkpoints(out_dir)[:-keep_last]:
        _remove(path)


def load_checkpoint(fabric, path: Path, model, optimizer) -> dict[str, Any]:
    """Restores model and optimizer in place; returns the rest of the checkpoint."""
    state = {"model": model, "optimizer": optimizer}
    try:
        remainder = fabric.load(path, state, weights_only=True)
    except (KeyError, RuntimeError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"cannot resume from {path}: {first}") from None
    if remainder.get("format_version") != FORMAT_VERSION:
        raise UserError(f"cannot resume from {path}: not a checkpoint of this trainer (format_version missing)")
    return remainder


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
