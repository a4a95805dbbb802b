"""Training both arms: one run per (arm, seed), each a subprocess of the normal pretraining entry
point, so launcher, devices, strategy and resume behave exactly as in a single run.

A run that finished leaves `run_done.json` beside its checkpoints and is skipped on a re-run; an
unfinished one continues from its newest checkpoint (`--resume auto`).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from lit_gpt.errors import UserError
from lit_gpt.eval import options
from lit_gpt.pretrain.checkpoint import list_checkpoints

# The installed library's entry point, not a script found through this file's place in a clone.
PRETRAIN_MODULE = "lit_gpt.pretrain.cli"
DONE = "run_done.json"


@dataclass(frozen=True)
class Run:
    arm: str  # "meap" or "ntp"
    seed_index: int
    seed: int  # the trainer's --seed: the same for both arms of a seed
    mask_ratio: float
    run_dir: Path

    @property
    def name(self) -> str:
        return f"{self.arm}_seed{self.seed_index}"

    @property
    def label(self) -> str:
        return f"{self.arm.upper()} seed {self.seed_index}"


def plan_runs(out_dir: Path, n_seeds: int, base_seed: int, mask_ratio: float) -> list[Run]:
    """Seed k trains with seed base_seed + k; the MEAP arm with `mask_ratio`, the NTP arm with 0."""
    return [
        Run(arm, k, base_seed + k, ratio, out_dir / f"{arm}_seed{k}")
        for k in range(n_seeds)
        for arm, ratio in (("meap", mask_ratio), ("ntp", 0.0))
    ]


def pretrain_command(run: Run, config: str, overrides: list[str]) -> list[str]:
    return [
        sys.executable, "-m", PRETRAIN_MODULE, "--config", config, *overrides,
        "--mask_ratio", repr(run.mask_ratio), "--seed", str(run.seed), "--out_dir", str(run.run_dir), "--resume", "auto",
    ]


def final_checkpoint(run: Run) -> Optional[Path]:
    """The checkpoint a finished run recorded; None while the run is unfinished."""
    done = run.run_dir / DONE
    if not done.is_file():
        return None
    path = Path(json.loads(done.read_text())["checkpoint"])
    if not path.is_file():
        raise UserError(f"{done} names {path}, which is missing: delete {done} to train {run.name} again")
    return path


def train(run: Run, config: str, overrides: list[str]) -> Path:
    """Trains (or resumes) one run to its last step; -> its final checkpoint."""
    done = final_checkpoint(run)
    if done is not None:
        print(f"== {run.name}: finished earlier ({done.name}), skipped", flush=True)
        return done
    argv = pretrain_command(run, config, overrides)
    print(f"== {run.name}: {shlex.join(argv)}", flush=True)
    proc = subprocess.run(argv, env=os.environ.copy())
    if proc.returncode != 0:
        raise UserError(
            f"pretraining {run.name} stopped with exit code {proc.returncode} (its output is above); "
            "fix the cause and re-run the same command to continue"
        )
    checkpoints = list_checkpoints(run.run_dir)
    if not checkpoints:
        raise UserError(f"pretraining {run.name} ended without a checkpoint in {run.run_dir}")
    step, path = checkpoints[-1]
    options.write_json(run.run_dir / DONE, {"checkpoint": str(path.resolve()), "step": step, "command": shlex.join(argv)})
    return path
