"""Sharded checkpoint folders (torch.distributed.checkpoint), read without running pickled code.

The folder holds `.metadata` (the index of every tensor's chunks), one `__<rank>_0.distcp` file per
process and `meta.pt` with everything that is not a model or optimizer tensor (Lightning Fabric's layout).
torch.distributed.checkpoint unpickles `.metadata` with plain `pickle` and other entries with
`torch.load(weights_only=False)`, so a crafted folder could run code: here both go through the
allow-list of `safe_load`, which for the index also admits the index's own classes.
"""

from __future__ import annotations

import io
import pathlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from lit_gpt.errors import UserError, first_line
from lit_gpt.io.safe_load import AllowListUnpickler, load_torch_file

META_FILE = "meta.pt"
INDEX_FILE = ".metadata"
_INDEX_MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem")
_PATH_CLASSES = ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath")


class _IndexUnpickler(AllowListUnpickler):
    """The allow-list, plus the checkpoint index's own dataclasses and enums, memory formats, layouts and paths."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _INDEX_MODULES:
            obj = pickle.Unpickler.find_class(self, module, name)
            if isinstance(obj, type) and obj.__module__ == module:
                return obj
        elif module == "torch" and isinstance(getattr(torch, name, None), (torch.memory_format, torch.layout)):
            return getattr(torch, name)
        elif module == "pathlib" and name in _PATH_CLASSES:
            return getattr(pathlib, name)
        else:
            try:
                return super().find_class(module, name)
            except pickle.UnpicklingError:
                pass
        raise pickle.UnpicklingError(f"the checkpoint index refers to {module}.{name}, which is not loaded for safety")


def read_index(path: str | Path, file_name: str = INDEX_FILE):
    """The folder's `.metadata` (a torch.distributed.checkpoint Metadata), unpickled safely."""
    return _IndexUnpickler(io.BytesIO((Path(path) / file_name).read_bytes())).load()


def read_meta(path: str | Path) -> dict[str, Any]:
    """The folder's non-tensor entries, once its index has been read through the allow-list; UserError
    naming the folder when it is not a sharded checkpoint, its index cannot be read, or a shard file the
    index points into is missing or shorter than the index says."""
    if not (Path(path) / INDEX_FILE).is_file():
        raise UserError(f"{path}: a directory that is not a sharded checkpoint (no {INDEX_FILE} in it)")
    try:
        index = read_index(path)
    except pickle.UnpicklingError as err:
        raise UserError(f"{path}: {err}") from None
    except Exception as err:  # a damaged index: torch and pickle raise several types
        reason = f"{type(err).__name__}: {first_line(err)}"
        raise UserError(f"{path}: not a readable sharded checkpoint ({reason})") from None
    ends: dict[str, int] = {}  # shard file -> the end of its last byte range
    for item in (getattr(index, "storage_data", None) or {}).values():
        ends[item.relative_path] = max(ends.get(item.relative_path, 0), item.offset + item.length)
    for name, end in sorted(ends.items()):
        shard = Path(path) / name
        if not shard.is_file() or shard.stat().st_size < end:
            raise UserError(f"{shard}: {'truncated' if shard.is_file() else 'missing'}, a shard of the checkpoint {path}")
    meta_file = Path(path) / META_FILE
    meta = load_torch_file(meta_file) if meta_file.is_file() else {}
    if not isinstance(meta, dict):
        raise UserError(f"{meta_file}: holds a {type(meta).__name__}, not a dict")
    return meta


def load_sharded(state_dict: dict[str, Any], path: str | Path, no_dist: bool = False) -> None:
    """Fills `state_dict` (tensors or DTensors of the wanted shapes and sharding) in place from the folder;
    collective when a process group is initialised, unless `no_dist`."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.metadata import StorageMeta

    class SafeReader(dcp.FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any):
            metadata = read_index(self.path, Path(self._get_metadata_path(kwargs.get("rank"))).name)
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    class SafeLoadPlanner(dcp.DefaultLoadPlanner):
        def load_bytes(self, read_item, value: io.BytesIO) -> None:
            clean = io.BytesIO()
            torch.save(load_torch_file(value), clean)  # re-serialised from plain containers only
            clean.seek(0)
            super().load_bytes(read_item, clean)

    with warnings.catch_warnings():
        # Reading on one process without a process group is intended here, not worth a warning.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state_dict, storage_reader=SafeReader(path), planner=SafeLoadPlanner(), no_dist=no_dist)


def read_full_state_dict(path: str | Path, key: str = "model") -> dict[str, torch.Tensor]:
    """The full (unsharded) tensors saved under `key` (e.g. the model's state dict), on one CPU
    process without a process group; other entries (the optimizer) are not read."""
    from torch.distributed.checkpoint.metadata import TensorStorageMetadata

    index = read_index(path)
    prefix = f"{key}."
    wanted = {
        fqn[len(prefix):]: torch.empty(tuple(md.size), dtype=md.properties.dtype)
        for fqn, md in index.state_dict_metadata.items()
        if fqn.startswith(prefix) and isinstance(md, TensorStorageMetadata)
    }
    if not wanted:
        raise ValueError(f"no {key!r} tensors in the sharded checkpoint")
    state = {key: wanted}
    load_sharded(state, path, no_dist=True)
    return state[key]
