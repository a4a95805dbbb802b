"""The one loader of lit checkpoints (the trainer's, upstream TinyLlama/MEAP ones, plain state dicts) that
export, evaluation and `--init_from` use: memory-mapped (a training checkpoint's optimizer state is never
read into RAM), allow-list unpickled, and checked key by key against the model before anything is written.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Optional, Union

import torch

from lit_gpt.errors import UserError, first_line
from lit_gpt.config import Config
from lit_gpt.convert.hf import check_keys_and_shapes, lit_shapes
from lit_gpt.io.safe_load import load_torch_file

# Added, in any order and nesting, by torch.compile, DDP/FSDP and Fabric's module wrappers.
_WRAPPER_PREFIXES = re.compile(r"^(?:_forward_module\.|module\.|_orig_mod\.)+")
# Entries of a training checkpoint that are not metadata worth carrying along.
_NOT_META = ("model", "state_dict", "optimizer")


def strip_wrapper_prefixes(sd: dict[str, Any]) -> dict[str, Any]:
    return {_WRAPPER_PREFIXES.sub("", key): value for key, value in sd.items()}


def _split_checkpoint(obj: Any, path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """-> (state dict, metadata) from a training checkpoint dict or a plain state dict."""
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a checkpoint dict or a state dict")
    for key in ("model", "state_dict"):
        if isinstance(obj.get(key), dict):
            return obj[key], {k: v for k, v in obj.items() if k not in _NOT_META}
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj, {}
    shown = ", ".join(sorted(map(str, obj))[:10])
    raise UserError(f"{path} holds no model weights: no 'model' state dict and not a plain state dict (top-level keys: {shown})")


def resolve_config(meta: dict[str, Any], model_name: Optional[str], path: Path) -> Config:
    """The config recorded in the checkpoint, else the one `model_name` names; they must agree."""
    recorded = meta.get("config")
    hparams = meta.get("hparams") if isinstance(meta.get("hparams"), dict) else {}
    if isinstance(recorded, dict):
        try:
            config = Config.from_dict(recorded)
        except (TypeError, ValueError) as err:
            raise UserError(f"{path} records an unusable config: {err}") from None
        if model_name is not None and model_name != config.name:
            raise UserError(
                f"{path} was trained as {config.name!r}, not --model_name {model_name!r} "
                "(omit --model_name to use the recorded config)"
            )
        return config
    # Upstream TinyLlama/MEAP checkpoints record only the script's scalar hyperparameters.
    upstream_name = hparams.get("model_name") if isinstance(hparams.get("model_name"), str) else None
    model_name = upstream_name if model_name is None else model_name
    if model_name is None:
        raise UserError(f"{path} records no model config: pass --model_name (e.g. tiny_LLaMA_1b_mask) to "
                        "convert/convert_lit_checkpoint.py")
    if upstream_name is not None and upstream_name != model_name:
        raise UserError(f"{path} was trained as {upstream_name!r}, not --model_name {model_name!r}")
    try:
        return Config.from_name(model_name)
    except ValueError as err:
        raise UserError(f"--model_name: {err}") from None


def load_lit_checkpoint(path: Union[str, Path], model_name: Optional[str] = None) -> tuple[dict[str, torch.Tensor], Config, dict[str, Any]]:
    """-> (state dict, Config, metadata: every other top-level entry); an upstream TinyLlama/MEAP checkpoint
    needs `model_name`. UserError naming every missing/unexpected key and wrong shape."""
    path = Path(path).expanduser()
    sd, meta = read_lit_state_dict(path)
    config = resolve_config(meta, model_name, path)
    check_state_dict(sd, config, what=f"{path} does not match model {config.name!r}")
    return sd, config, meta


def read_lit_state_dict(path: Union[str, Path]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (state dict, metadata) of a lit checkpoint file, not yet checked against a model shape."""
    path = Path(path).expanduser()
    if path.is_dir():
        sd, meta = read_sharded_checkpoint(path)
    else:  # load_torch_file names a missing file
        sd, meta = _split_checkpoint(load_torch_file(path), path)
    sd = strip_wrapper_prefixes(sd)
    if any(k.startswith(("model.layers.", "model.embed_tokens.")) for k in sd):
        raise UserError(
            f"{path} holds Hugging Face LLaMA weights, not a lit checkpoint: use convert/convert_safetensors.py "
            "to turn them into safetensors, or convert/convert_hf_checkpoint.py to import them"
        )
    non_tensors = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if non_tensors:
        raise UserError(f"{path}: state dict entries that are not tensors: {', '.join(non_tensors[:8])}")
    return sd, meta


def read_sharded_checkpoint(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """-> (full model state dict, metadata) of a sharded training checkpoint folder; the optimizer is not read."""
    from torch.distributed.checkpoint import CheckpointException

    from lit_gpt.io import sharded_checkpoint

    meta = sharded_checkpoint.read_meta(path)
    try:  # read_meta checked the index; torch reads the tensors with weights_only=True
        sd = sharded_checkpoint.read_full_state_dict(path, "model")
    except (Exception, CheckpointException) as err:  # a damaged folder: torch raises several types, not all Exceptions
        reason = f"{type(err).__name__}: {first_line(err)}"
        raise UserError(f"could not read {path} as a sharded checkpoint: {reason}") from None
    return sd, {k: v for k, v in meta.items() if k not in _NOT_META}


def check_state_dict(sd: dict[str, torch.Tensor], config: Config, what: str) -> None:
    """UserError `what: ...` listing every missing/unexpected key and wrong shape against `GPT(config)`."""
    check_keys_and_shapes(sd, lit_shapes(config), what)
