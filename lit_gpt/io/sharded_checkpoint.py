"""Sharded checkpoint folders (torch.distributed.checkpoint), read without running pickled code.

A sharded checkpoint is a folder: `.metadata` (the index of every tensor's chunks), one
`__<rank>_0.distcp` file of shards per process, and `meta.pt` with everything that is not a
tensor of the model or optimizer (the layout Lightning Fabric uses too).

torch.distributed.checkpoint unpickles `.metadata` with plain `pickle` and non-tensor entries
with `torch.load(weights_only=False)`, so a crafted folder could run code. Here `.metadata` goes
through an unpickler that only builds the checkpoint index's own classes, and every other entry
through the allow-list loader of `safe_load`.
"""

from __future__ import annotations

import io
import pathlib
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from lit_gpt.io.safe_load import load_torch_file

META_FILE = "meta.pt"
INDEX_FILE = ".metadata"
_INDEX_MODULES = ("torch.distributed.checkpoint.metadata", "torch.distributed.checkpoint.filesystem")
_PATH_CLASSES = ("PosixPath", "WindowsPath", "PurePosixPath", "PureWindowsPath")


def is_sharded_checkpoint(path: str | Path) -> bool:
    return Path(path).is_dir() and (Path(path) / INDEX_FILE).is_file()


class _IndexUnpickler(pickle.Unpickler):
    """Builds only the checkpoint index: its dataclasses and enums, torch.Size, dtypes, layouts, paths."""

    def find_class(self, module: str, name: str) -> Any:
        if module in _INDEX_MODULES:
            obj = super().find_class(module, name)
            if isinstance(obj, type) and obj.__module__ == module:
                return obj
        elif module == "torch" and name == "Size":
            return torch.Size
        elif module == "torch" and isinstance(getattr(torch, name, None), (torch.dtype, torch.memory_format, torch.layout)):
            return getattr(torch, name)
        elif module == "torch.serialization" and name == "_get_layout":
            return super().find_class(module, name)  # maps a layout's name to torch.strided etc.
        elif module == "pathlib" and name in _PATH_CLASSES:
            return getattr(pathlib, name)
        elif module == "collections" and name == "OrderedDict":
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"the checkpoint index refers to {module}.{name}, which is not loaded for safety")


def read_index(path: str | Path):
    """The folder's `.metadata` (a torch.distributed.checkpoint Metadata), unpickled safely."""
    data = (Path(path) / INDEX_FILE).read_bytes()
    return _IndexUnpickler(io.BytesIO(data)).load()


def _safe_reader(path: str | Path):
    from torch.distributed.checkpoint import FileSystemReader

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any):
            from torch.distributed.checkpoint.metadata import StorageMeta

            data = Path(self._get_metadata_path(kwargs.get("rank"))).read_bytes()
            metadata = _IndexUnpickler(io.BytesIO(data)).load()
            if getattr(metadata, "storage_meta", None) is None:
                metadata.storage_meta = StorageMeta()
            metadata.storage_meta.load_id = self.load_id
            return metadata

    return SafeReader(path)


def _safe_planner():
    from torch.distributed.checkpoint import DefaultLoadPlanner

    class SafeLoadPlanner(DefaultLoadPlanner):
        def load_bytes(self, read_item, value: io.BytesIO) -> None:
            obj = load_torch_file(value)
            value = io.BytesIO()
            torch.save(obj, value)  # re-serialised from plain containers only
            value.seek(0)
            super().load_bytes(read_item, value)

    return SafeLoadPlanner()


def load_sharded(state_dict: dict[str, Any], path: str | Path, no_dist: bool = False) -> None:
    """Fills `state_dict` (tensors or DTensors of the wanted shapes and sharding) in place from the folder;
    collective when a process group is initialised, unless `no_dist`."""
    import torch.distributed.checkpoint as dcp

    with warnings.catch_warnings():
        # Reading on one process without a process group is intended here, not worth a warning.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state_dict, storage_reader=_safe_reader(path), planner=_safe_planner(), no_dist=no_dist)


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
