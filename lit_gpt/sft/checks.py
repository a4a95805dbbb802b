"""Checks that refuse a bad SFT launch (one line naming the variable, folder or file at fault)
before any model is loaded or anything is written."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from lit_gpt.errors import UserError, first_line


def check_world_size(training_args) -> None:
    """Refuses a launch whose processes would not train together.

    `torchrun --nproc_per_node 2` on a machine where the Trainer finds no device per process
    (e.g. CPU without --use_cpu) starts two independent single-process trainings writing the same
    folder; the launcher's WORLD_SIZE and the Trainer's world size then disagree.
    """
    launched, trainer_size = os.environ.get("WORLD_SIZE"), training_args.world_size
    if launched is not None and launched.strip() != str(trainer_size):
        import torch

        accelerator = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
        hint = "" if accelerator else " (on CPU, add --use_cpu to train with several processes)"
        raise UserError(f"the launcher started WORLD_SIZE={launched} processes but the Trainer sees a world of "
                        f"{trainer_size}: each process would train alone{hint}")


def check_masked_copies(summary, meap_args, min_share: float) -> None:
    """Refuses a MEAP run whose training samples would mostly (or all) train plain NTP: in concat
    mode the copy only gets the room the original leaves of --model_max_length, so data longer than
    half of it gets no copy, and a run launched as MEAP would compare NTP with NTP."""
    if meap_args.meap_mode == "ntp":
        return
    eligible, planned = summary.copy_eligible, summary.with_copy
    if planned > 0 and planned >= min_share * eligible:
        return
    counts = (f"--meap_mode {meap_args.meap_mode}: {planned} of the {summary.examples} training samples will carry a "
              f"masked copy, of {eligible} with at least --min_answer_tokens {meap_args.min_answer_tokens} answer tokens")
    if meap_args.allow_few_masked_copies:
        print(f"warning: {counts}; training anyway (--allow_few_masked_copies)", file=sys.stderr)
        return
    if eligible == 0:
        remedies = "lower --min_answer_tokens, or use --meap_mode ntp to train without masked copies on purpose"
    elif meap_args.meap_mode == "concat":
        remedies = (f"a longer --model_max_length than {meap_args.model_max_length} (the paper uses 4096), "
                    "--make_room_for_copy (cut long originals to half to fit their copy), --meap_mode separate")
    else:
        remedies = f"a longer --model_max_length than {meap_args.model_max_length}"
    raise UserError(f"{counts}: the run would be mostly plain NTP; use {remedies}, or pass --allow_few_masked_copies "
                    "to train anyway")


def check_remote_code(folder: Path, what: str, trust_remote_code: bool) -> None:
    """Refuses a folder whose config.json / tokenizer_config.json `auto_map` points to classes in its
    own .py files without --trust_remote_code (transformers would refuse with a traceback)."""
    if trust_remote_code:
        return
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        if not path.is_file():
            continue
        try:
            config = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise UserError(f"{what} {path}: not readable as JSON: {err}") from None
        if not isinstance(config, dict) or not config.get("auto_map"):
            continue
        classes = config["auto_map"]
        listed = ", ".join(f"{k}={v}" for k, v in classes.items()) if isinstance(classes, dict) else str(classes)
        raise UserError(f"{what} {folder}: {name} maps to custom code in that folder ({listed}); pass "
                        "--trust_remote_code to run it, only if you trust its source")


def check_model_weights(folder: Path) -> None:
    """Opens every weight file of the model folder before transformers does (which refuses a
    truncated or unsafe one too, but with a traceback)."""
    from lit_gpt.eval.models import check_safetensors_files
    from lit_gpt.io.safe_load import load_torch_file

    if check_safetensors_files(folder):
        return
    for path in sorted(folder.glob("pytorch_model*.bin")):
        try:
            load_torch_file(path)  # the allow-list unpickler, memory-mapped: nothing in it runs
        except UserError as err:
            raise UserError(f"--model_name_or_path: {err}") from None


# What the Trainer reads with torch.load when it resumes (transformers 5 Trainer._load_*).
PICKLED_CHECKPOINT_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth", "pytorch_model*.bin")


def check_checkpoint_files(checkpoint: str) -> None:
    """Opens every file of `checkpoint` that resuming unpickles with torch.load(weights_only=True),
    memory-mapped where it is a zip (large optimizer states), to refuse a truncated file or one whose
    pickle would run code (anything but tensors, plain containers and the Trainer's numpy RNG state)."""
    import pickle
    import zipfile

    import torch
    from transformers.trainer_pt_utils import safe_globals

    folder = Path(checkpoint)
    for pattern in PICKLED_CHECKPOINT_FILES:
        for path in sorted(folder.glob(pattern)):
            try:
                with safe_globals():  # the numpy arrays and dtypes of rng_state.pth
                    torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
            except pickle.UnpicklingError as err:
                # the line of torch's long weights_only message that names what was refused
                reason = str(err).split("WeightsUnpickler error:", 1)[-1].strip()
                reason = (reason.splitlines() or [type(err).__name__])[0].split(". ")[0][:160]
                raise UserError(f"--resume_from_checkpoint: refusing {path}: it holds more than tensors and "
                                f"plain data, which could run code when loaded ({reason})") from None
            except Exception as err:  # torch reports truncated or corrupt files with several types
                raise UserError(f"--resume_from_checkpoint: cannot read {path} (truncated or corrupt?): "
                                f"{first_line(err)[:160]}") from None
