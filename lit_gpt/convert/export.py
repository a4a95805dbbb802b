"""Lit checkpoints to Hugging Face LLaMA folders (and models in memory), and HF weights back to lit.

The export writes safetensors shard by shard from the memory-mapped checkpoint, never building a
Hugging Face model, so converting needs about the model's size in RAM (in the target dtype); it is
staged beside the destination (lit_gpt.io.atomic), so an error at any point leaves nothing behind.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from lit_gpt.errors import UserError, first_line
from lit_gpt.io.hf_quiet import quiet_hf_loading
from lit_gpt.config import Config, find_multiple
from lit_gpt.convert.checkpoint import load_lit_checkpoint, strip_wrapper_prefixes
from lit_gpt.io.safe_load import load_torch_file
from lit_gpt.convert.hf import (config_from_hf, hf_config_dict, hf_shapes, hf_to_lit_state_dict,
                                lit_to_hf_items, lit_to_hf_state_dict)
from lit_gpt.io.atomic import staged
from lit_gpt.tokenizer import MASK_TOKEN, TOKENIZER_FILES, ensure_mask_token, load_tokenizer, tokenizer_info

PathLike = Union[str, Path]

# The command lines offer the full names; library callers may also use the short ones.
DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
          "half": torch.float16, "float32": torch.float32, "fp32": torch.float32}
SAFETENSORS_INDEX = "model.safetensors.index.json"
# Files a Hugging Face model folder may hold besides the weights; copied along by convert_safetensors.
HF_SIDE_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer.model",
                 "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "chat_template.jinja")


@dataclass
class ExportResult:
    out_dir: Path
    n_params: int
    n_bytes: int
    n_shards: int
    dtype: str
    tokenizer_saved: bool
    seconds: float

    def summary(self) -> str:
        shards = "1 file" if self.n_shards == 1 else f"{self.n_shards} shards"
        tok = "with tokenizer" if self.tokenizer_saved else "WITHOUT tokenizer files"
        return (f"wrote {self.out_dir}: {self.n_params / 1e6:.1f}M parameters, {self.dtype}, "
                f"{self.n_bytes / 1e9:.2f} GB in {shards}, {tok}, {self.seconds:.1f} s")


def parse_dtype(dtype: Union[str, torch.dtype]) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; choose bfloat16, float16 or float32")
    return DTYPES[dtype]


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


_SIZE_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12,
               "KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}


def parse_size(size: Union[int, str]) -> int:
    """'5GB' -> 5_000_000_000 (Hugging Face's convention: decimal units, binary with 'iB')."""
    if isinstance(size, int):
        value = size
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?I?B?)\s*", size.upper())
        if not m or m.group(2) not in _SIZE_UNITS:
            raise UserError(f"--max_shard_size {size!r} is not a size like 5GB, 500MB or 2GiB")
        value = int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    if value <= 0:
        raise UserError(f"--max_shard_size must be positive, got {size!r}")
    return value


def _check_destination(out: Path, overwrite: bool, protected: tuple[Optional[Path], ...]) -> None:
    if out.exists() and not out.is_dir():
        raise UserError(f"--out_dir {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise UserError(f"--out_dir {out} is not empty; pass --overwrite to replace it")
        for path in protected:
            if path is not None and (path.resolve() == out.resolve() or out.resolve() in path.resolve().parents):
                raise UserError(f"refusing to replace --out_dir {out}: it holds {path}, an input of this conversion")


def write_safetensors(items, folder: Path, max_shard_bytes: int) -> tuple[int, int]:
    """Writes `items` ((name, shape, dtype, make_tensor)) as model.safetensors, or as shards + index;
    -> (number of shards, total bytes). Shards are planned from the shapes, then each is made, written
    and freed in turn, so memory holds at most one shard of converted tensors."""
    from safetensors.torch import save_file
    from tqdm import tqdm

    items = list(items)
    shards: list[list[tuple[str, torch.dtype, Any]]] = [[]]
    shard_bytes = total = 0
    for name, shape, dtype, make in items:
        size = math.prod(shape) * dtype.itemsize
        if shards[-1] and shard_bytes + size > max_shard_bytes:
            shards.append([])
            shard_bytes = 0
        shards[-1].append((name, dtype, make))
        shard_bytes += size
        total += size
    n = len(shards)
    names = ["model.safetensors"] if n == 1 else [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]
    weight_map = {}
    with tqdm(total=len(items), desc="writing safetensors", unit="tensor", disable=not sys.stderr.isatty()) as bar:
        for file_name, shard in zip(names, shards):
            tensors, storages = {}, set()
            for name, dtype, make in shard:
                tensor = make().to(dtype)
                # safetensors refuses views into a larger storage and tensors sharing one (tied weights); any
                # other tensor stays a view of the memory-mapped checkpoint (a copy of each would double the RAM).
                storage = tensor.untyped_storage()
                if not tensor.is_contiguous() or storage.nbytes() != tensor.nbytes or storage.data_ptr() in storages:
                    tensor = tensor.clone(memory_format=torch.contiguous_format)
                storages.add(tensor.untyped_storage().data_ptr())
                tensors[name] = tensor
                weight_map[name] = file_name
            save_file(tensors, str(folder / file_name), metadata={"format": "pt"})
            bar.update(len(shard))
            del tensors
    if n > 1:
        index = {"metadata": {"total_size": total}, "weight_map": weight_map}
        (folder / SAFETENSORS_INDEX).write_text(json.dumps(index, indent=2) + "\n")
    return n, total


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def _tokenizer_and_hf_config(config: Config, meta: dict[str, Any], tokenizer_dir: Optional[PathLike],
                             torch_dtype: torch.dtype, config_class=dict):
    """-> (folder, tokenizer, Hugging Face config (a `config_class`)): the tokenizer given, else the one the
    checkpoint records, else none; with `[MASK]` when the model has a row for it."""
    recorded = meta.get("tokenizer_dir")
    if tokenizer_dir is None and isinstance(recorded, str) and recorded:
        tokenizer_dir = Path(recorded).expanduser()
        if not tokenizer_dir.is_dir():
            raise UserError(f"the checkpoint records tokenizer_dir {tokenizer_dir}, which does not exist here: "
                            "pass --tokenizer_dir")
    tok_dir = tokenizer = info = None
    if tokenizer_dir is not None:
        tok_dir = Path(tokenizer_dir).expanduser()
        tokenizer = load_tokenizer(tok_dir, add_mask_token=False)
        rows = config.padded_vocab_size
        if MASK_TOKEN in tokenizer.get_vocab() or len(tokenizer) < rows:
            ensure_mask_token(tokenizer)
        if len(tokenizer) > rows:
            raise UserError(f"the tokenizer in {tok_dir} has {len(tokenizer)} tokens, more than the {rows} "
                            f"embedding rows of model {config.name!r}: wrong --tokenizer_dir?")
        info = tokenizer_info(tokenizer, tok_dir)
    return tok_dir, tokenizer, config_class(**hf_config_dict(config, info, dtype=dtype_name(torch_dtype)))


def export_hf(checkpoint_path: PathLike, out_dir: PathLike, *, model_name: Optional[str] = None,
              tokenizer_dir: Optional[PathLike] = None, dtype: Union[str, torch.dtype] = "bfloat16",
              max_shard_size: Union[int, str] = "5GB", overwrite: bool = False) -> ExportResult:
    """Writes a folder that `from_pretrained` loads offline (docs/CONVERSION.md); without a tokenizer
    given or recorded it holds none (`tokenizer_saved`). On any problem: UserError, nothing written."""
    start = time.perf_counter()
    torch_dtype = parse_dtype(dtype)
    max_shard_bytes = parse_size(max_shard_size)
    out = Path(out_dir).expanduser()
    checkpoint_path = Path(checkpoint_path).expanduser()
    _check_destination(out, overwrite, protected=(checkpoint_path, Path(tokenizer_dir) if tokenizer_dir else None))
    sd, config, meta = load_lit_checkpoint(checkpoint_path, model_name)
    tok_dir, tokenizer, hf_config = _tokenizer_and_hf_config(config, meta, tokenizer_dir, torch_dtype)
    _check_destination(out, overwrite, protected=(checkpoint_path, tok_dir))

    from transformers import GenerationConfig, __version__ as transformers_version

    with staged(out, "--out_dir", folder=True) as staging:
        _write_json(staging / "config.json", {**hf_config, "transformers_version": transformers_version})
        GenerationConfig(bos_token_id=hf_config["bos_token_id"], eos_token_id=hf_config["eos_token_id"]).save_pretrained(staging)
        shapes = hf_shapes(config)
        items = ((name, shapes[name], torch_dtype, make) for name, make in lit_to_hf_items(sd, config))
        n_shards, n_bytes = write_safetensors(items, staging, max_shard_bytes)
        if tokenizer is not None:
            tokenizer.model_max_length = config.block_size
            tokenizer.save_pretrained(str(staging))
    n_params = sum(t.numel() for t in sd.values())
    return ExportResult(out, n_params, n_bytes, n_shards, dtype_name(torch_dtype), tokenizer is not None, time.perf_counter() - start)


def lit_to_hf(checkpoint_path: PathLike, tokenizer_dir: Optional[PathLike] = None,
              dtype: Union[str, torch.dtype, None] = None, model_name: Optional[str] = None):
    """A lit checkpoint as an in-memory `LlamaForCausalLM` (eval mode) and its tokenizer (None when none
    is given or recorded); `dtype` None keeps the checkpoint's. Unconverted weights stay memory-mapped."""
    from transformers import LlamaConfig, LlamaForCausalLM

    sd, config, meta = load_lit_checkpoint(checkpoint_path, model_name)
    torch_dtype = parse_dtype(dtype) if dtype is not None else sd["lm_head.weight"].dtype
    _, tokenizer, hf_config = _tokenizer_and_hf_config(config, meta, tokenizer_dir, torch_dtype, LlamaConfig)
    hf_sd = {k: v.to(torch_dtype) for k, v in lit_to_hf_state_dict(sd, config).items()}
    # from_pretrained with a state dict skips the random initialisation a plain constructor does.
    with quiet_hf_loading():
        model = LlamaForCausalLM.from_pretrained(None, config=hf_config, state_dict=hf_sd, dtype=torch_dtype)
    return model.eval(), tokenizer


def read_hf_weights(hf_dir: Path) -> dict[str, torch.Tensor]:
    """All tensors of a HF folder: model.safetensors (+ index/shards) or pytorch_model.bin (+ index)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    for single, load in (("model.safetensors", load_file), ("pytorch_model.bin", load_torch_file)):
        index = hf_dir / f"{single}.index.json"
        if index.is_file():
            try:
                files = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise UserError(f"{index} is not a weight index: {first_line(err)}") from None
        elif (hf_dir / single).is_file():
            files = [single]
        else:
            continue
        sd = {}
        for name in files:
            path = hf_dir / name
            if not path.is_file():
                raise UserError(f"{path}, listed in {index}, does not exist")
            try:
                sd.update(load(path))
            except SafetensorError as err:
                raise UserError(f"could not read {path}: {err}") from None
        return sd
    raise UserError(f"{hf_dir} holds no model.safetensors, pytorch_model.bin or an index of their shards")


def _grow_rows(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """Appends rows equal to the mean of the existing ones (new tokens start as an average token)."""
    extra = rows - weight.size(0)
    if extra <= 0:
        return weight
    mean = weight.float().mean(dim=0, keepdim=True).to(weight.dtype)
    return torch.cat((weight, mean.expand(extra, -1)), dim=0)


_ARCHITECTURE_FIELDS = ("n_layer", "n_embd", "n_head", "n_query_groups", "intermediate_size", "head_size", "norm_eps", "rope_base")


def target_config(source: Config, model_name: Optional[str], tokenizer_size: Optional[int]) -> Config:
    """The lit config of an imported model: the named shape (which must match), with room for the tokenizer."""
    if model_name is None:
        base = source
        vocab_size = tokenizer_size or source.vocab_size
    else:
        try:
            base = Config.from_name(model_name)
        except ValueError as err:
            raise UserError(f"--model_name: {err}") from None
        diffs = [f"{f} {getattr(source, f)} (checkpoint) vs {getattr(base, f)}" for f in _ARCHITECTURE_FIELDS
                 if getattr(source, f) != getattr(base, f)]
        if diffs:
            raise UserError(f"the Hugging Face model does not have the shape of {model_name!r}: {', '.join(diffs)}")
        vocab_size = max(base.vocab_size, tokenizer_size or 0)
    padded = max(find_multiple(vocab_size, base.padding_multiple), source.padded_vocab_size, base.padded_vocab_size)
    return Config.from_dict({**base.to_dict(), "vocab_size": vocab_size, "padded_vocab_size": padded})


def import_hf(hf_dir: PathLike, out_path: PathLike, model_name: Optional[str] = None, overwrite: bool = False) -> dict[str, Any]:
    """A Hugging Face LLaMA folder -> a lit checkpoint {"model", "config", "tokenizer_dir", "source"}
    that `--init_from` starts from; embedding and head grow as docs/CONVERSION.md says. Returns a summary."""
    start = time.perf_counter()
    hf_dir = Path(hf_dir).expanduser()
    out = Path(out_path).expanduser()
    if not (hf_dir / "config.json").is_file():
        raise UserError(f"{hf_dir} has no config.json: not a Hugging Face model folder")
    if out.is_dir():
        raise UserError(f"--out {out} is a directory; give a file path such as {out / 'lit_model.pth'}")
    if out.exists() and not overwrite:
        raise UserError(f"--out {out} exists; pass --overwrite to replace it")
    try:
        hf_cfg = json.loads((hf_dir / "config.json").read_text())
        if not isinstance(hf_cfg, dict):
            raise ValueError(f"holds a JSON {type(hf_cfg).__name__}, not an object of settings")
        source = config_from_hf(hf_cfg, name=model_name or hf_dir.name)
    except ValueError as err:
        raise UserError(f"{hf_dir / 'config.json'}: {err}") from None
    has_tokenizer = any((hf_dir / f).is_file() for f in TOKENIZER_FILES)
    tokenizer_size = len(load_tokenizer(hf_dir)) if has_tokenizer else None
    config = target_config(source, model_name, tokenizer_size)

    sd = hf_to_lit_state_dict(read_hf_weights(hf_dir), source, what=f"{hf_dir} does not match its config.json: "
                                                                    "Hugging Face weights")
    grown = config.padded_vocab_size - source.padded_vocab_size
    for key in ("transformer.wte.weight", "lm_head.weight"):
        sd[key] = _grow_rows(sd[key], config.padded_vocab_size)
    checkpoint = {"model": sd, "config": config.to_dict(),  # this order: the file's bytes
                  "tokenizer_dir": str(hf_dir.resolve()) if has_tokenizer else None, "source": str(hf_dir.resolve())}
    n_bytes = sum(t.numel() * t.element_size() for t in sd.values())
    with staged(out, "--out", needed_bytes=n_bytes, also=(RuntimeError,)) as staging:
        torch.save(checkpoint, staging)
    return {
        "out": out, "model_name": config.name, "n_params": sum(t.numel() for t in sd.values()),
        "dtype": dtype_name(sd["lm_head.weight"].dtype), "vocab_rows_added": grown, "seconds": time.perf_counter() - start,
    }


def bin_to_safetensors(checkpoint_path: PathLike, out_dir: PathLike, *, dtype: Union[str, torch.dtype, None] = None,
                       max_shard_size: Union[int, str] = "5GB", overwrite: bool = False) -> ExportResult:
    """Rewrites Hugging Face `pytorch_model.bin` weights (a file, or a folder with shards) as safetensors,
    copying the HF_SIDE_FILES next to them; `dtype` None keeps the stored dtype."""
    start = time.perf_counter()
    src = Path(checkpoint_path).expanduser()
    out = Path(out_dir).expanduser()
    max_shard_bytes = parse_size(max_shard_size)
    torch_dtype = parse_dtype(dtype) if dtype is not None else None
    if not src.exists():
        raise UserError(f"--checkpoint_path {src} does not exist")
    _check_destination(out, overwrite, protected=(src,))
    if src.is_dir():
        sd, folder = read_hf_weights(src), src
    else:
        obj, folder = load_torch_file(src), src.parent
        sd = obj["model"] if isinstance(obj, dict) and isinstance(obj.get("model"), dict) else obj
    if not isinstance(sd, dict) or not sd or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise UserError(f"{src} is not a state dict of tensors")
    sd = strip_wrapper_prefixes(sd)
    if any(k.startswith("transformer.h.") for k in sd):
        raise UserError(f"{src} holds lit weights, not Hugging Face ones: use convert/convert_lit_checkpoint.py")
    floats = {v.dtype for v in sd.values() if v.is_floating_point()}
    if torch_dtype is None and len(floats) > 1:
        raise UserError(f"{src} mixes dtypes ({', '.join(sorted(map(dtype_name, floats)))}): pass --dtype")
    out_dtype = torch_dtype or (floats.pop() if floats else torch.float32)
    side_files = [folder / f for f in HF_SIDE_FILES if (folder / f).is_file()]
    with staged(out, "--out_dir", folder=True) as staging:
        # Integer buffers keep their dtype; only floating weights are cast.
        items = [(k, tuple(v.shape), out_dtype if v.is_floating_point() else v.dtype, (lambda v=v: v)) for k, v in sd.items()]
        n_shards, n_bytes = write_safetensors(items, staging, max_shard_bytes)
        for path in side_files:
            shutil.copy2(path, staging / path.name)
        if torch_dtype is not None and (staging / "config.json").is_file():
            config = json.loads((staging / "config.json").read_text())
            config.update(torch_dtype=dtype_name(torch_dtype), dtype=dtype_name(torch_dtype))
            _write_json(staging / "config.json", config)
    has_tokenizer = any((out / f).is_file() for f in TOKENIZER_FILES)
    n_params = sum(t.numel() for t in sd.values())
    return ExportResult(out, n_params, n_bytes, n_shards, dtype_name(out_dtype), has_tokenizer, time.perf_counter() - start)

