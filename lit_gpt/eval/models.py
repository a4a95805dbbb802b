"""Loading the model under evaluation, from local files only: a Hugging Face folder, or a lit checkpoint
(`.pth`) converted in memory to the same Hugging Face causal LM, so every evaluation sees one kind of model."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, Union

from lit_gpt.errors import UserError, first_line
from lit_gpt.tokenizer import TOKENIZER_FILES, load_tokenizer

if TYPE_CHECKING:
    import torch

# torch is imported where it is used, so a bad path fails in one line before the heavy imports.


@dataclass
class LoadedModel:
    model: Any  # a transformers PreTrainedModel in eval mode, on `device`
    tokenizer: Any  # padding on the left, with a pad token
    device: "torch.device"
    dtype: "torch.dtype"
    source: str  # "hf" or "lit"

    @property
    def max_positions(self) -> Optional[int]:
        return getattr(self.model.config, "max_position_embeddings", None)  # None when the config does not say


def resolve_device(device: str = "auto", flag: str = "--device") -> "torch.device":
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"{flag} {device} was asked for but no CUDA device is available")
    try:
        return torch.device(device)
    except (RuntimeError, ValueError):
        raise UserError(f"unknown {flag} {device!r} (auto, cpu, cuda, cuda:1, ...)") from None


def prepare_tokenizer_for_batching(tokenizer) -> None:
    """Left padding so every row's last prompt token is the last column; EOS pads when nothing else does."""
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    # Haystack text is tokenized in pieces longer than the model's context on purpose; prompt
    # lengths are checked against the model's max_positions, so the tokenizer's warning is noise.
    tokenizer.model_max_length = int(1e30)


def check_model_path(model_path: Union[str, Path], tokenizer_dir: Union[str, Path, None] = None) -> Path:
    """Fails early, in one line, on a path that is neither a HF model folder nor a lit checkpoint."""
    path = Path(model_path).expanduser()
    if not path.exists():
        raise UserError(f"model not found: {path}")
    if path.is_file():
        if path.suffix != ".pth":
            raise UserError(f"{path} is neither a Hugging Face folder nor a lit checkpoint (.pth)")
        if tokenizer_dir and not any((Path(tokenizer_dir).expanduser() / name).is_file() for name in TOKENIZER_FILES):
            raise UserError(f"no tokenizer in {tokenizer_dir} for lit checkpoint {path.name}")
    elif not (path / "config.json").is_file():
        lit = sorted(p.name for p in path.glob("*.pth"))
        hint = f"; it holds lit checkpoints, pass one of them: {', '.join(lit[:5])}" if lit else ""
        raise UserError(f"{path} has no config.json, so it is not a Hugging Face model folder{hint}")
    return path


def check_safetensors_files(folder: Path) -> bool:
    """Opens the header of every safetensors file of a HF folder (cheap: nothing is read into memory),
    so that a truncated or corrupt shard fails in one line naming it. False when there are none."""
    from safetensors import SafetensorError, safe_open

    from lit_gpt.convert.export import SAFETENSORS_INDEX

    index = folder / SAFETENSORS_INDEX
    if index.is_file():
        try:
            names = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise UserError(f"{index} is not a weight index: {first_line(err)}") from None
    elif (folder / "model.safetensors").is_file():
        names = ["model.safetensors"]
    else:
        return False
    for name in names:
        shard = folder / name
        if not shard.is_file():
            raise UserError(f"{shard}, listed in {index}, does not exist")
        try:
            with safe_open(str(shard), framework="pt"):
                pass
        except (SafetensorError, OSError) as err:
            raise UserError(f"{shard} is not a readable safetensors file (truncated or corrupt?): {first_line(err)}") from None
    return True


def load_hf_folder(path: Path, dtype: "torch.dtype", trust_remote_code: bool = False):
    """A Hugging Face model folder as a causal LM. safetensors weights load through transformers;
    `pytorch_model.bin` weights are read by `lit_gpt.io.safe_load` (any pickle protocol, nothing in
    them runs: upstream MEAP's converter writes protocol 5, which transformers' loader refuses)."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    from lit_gpt.convert.export import read_hf_weights
    from lit_gpt.io.hf_quiet import quiet_hf_loading

    try:
        with quiet_hf_loading():
            if check_safetensors_files(path):
                return AutoModelForCausalLM.from_pretrained(
                    str(path), dtype=dtype, local_files_only=True, trust_remote_code=trust_remote_code
                )
            config = AutoConfig.from_pretrained(str(path), local_files_only=True, trust_remote_code=trust_remote_code)
            if type(config) not in MODEL_FOR_CAUSAL_LM_MAPPING:
                raise UserError(f"{path}: pytorch_model.bin weights of model type {config.model_type!r} are not "
                                "supported here; convert them with convert/convert_safetensors.py first")
            model, info = MODEL_FOR_CAUSAL_LM_MAPPING[type(config)].from_pretrained(
                None, config=config, state_dict=read_hf_weights(path), dtype=dtype, output_loading_info=True
            )
    except (OSError, ValueError) as err:
        raise UserError(f"could not load the Hugging Face model in {path}: {first_line(err)}") from None
    if info["missing_keys"]:
        # transformers would leave these randomly initialised; an evaluation of that means nothing.
        missing = sorted(info["missing_keys"])
        raise UserError(f"{path}: pytorch_model.bin lacks {len(missing)} weights of the model: {', '.join(missing[:5])}")
    return model


def load_model(
    model_path: Union[str, Path],
    *,
    tokenizer_dir: Union[str, Path, None] = None,
    device: str = "auto",
    dtype: str = "auto",
    trust_remote_code: bool = False,
) -> LoadedModel:
    """Loads a Hugging Face folder (config.json) or a lit checkpoint file (.pth) for greedy decoding."""
    import torch

    path = check_model_path(model_path, tokenizer_dir)
    torch_device = resolve_device(device)
    if dtype != "auto":
        from lit_gpt.convert.export import parse_dtype

        torch_dtype = parse_dtype(dtype)
    elif torch_device.type == "cuda":
        torch_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        torch_dtype = torch.float32
    if path.is_file():
        from lit_gpt.convert.export import lit_to_hf

        # lit_gpt.convert checks every key and shape; without --tokenizer_dir, the tokenizer the checkpoint records.
        model, tokenizer = lit_to_hf(path, tokenizer_dir=Path(tokenizer_dir).expanduser() if tokenizer_dir else None,
                                     dtype=torch_dtype)
        if tokenizer is None:
            raise UserError(f"{path} records no tokenizer: pass --tokenizer_dir")
        source = "lit"
    else:
        tokenizer = load_tokenizer(tokenizer_dir or path, add_mask_token=False, trust_remote_code=trust_remote_code)
        model = load_hf_folder(path, torch_dtype, trust_remote_code)
        source = "hf"
    prepare_tokenizer_for_batching(tokenizer)
    model.to(torch_device).eval()
    return LoadedModel(model=model, tokenizer=tokenizer, device=torch_device, dtype=torch_dtype, source=source)
