"""Reading `.pth` / `.bin` weight files without ever running code that a file carries.

`torch.load(weights_only=True)` refuses pickle protocols 4 and 5 (still in torch 2.13), and
TinyLlama/upstream MEAP's converter writes `pytorch_model.bin` with protocol 5. So Python's own
unpickler (every protocol) runs with a `find_class` that answers only for tensors, storages, dtypes,
sizes and plain containers: any other global stops the load where it is named, before anything calls
it. torch.load still does the file-format work (zip archives, memory-mapped; the legacy format)
through its `pickle_module` hook, so a multi-GB checkpoint is mapped, not copied.
"""

from __future__ import annotations

import _compat_pickle
import pickle
import zipfile
from collections import OrderedDict
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any, Union

import torch

from lit_gpt.errors import UserError, first_line


class UnsafeCheckpointError(UserError):
    """The file names a global outside the allow-list; nothing it refers to was called."""


class _RefusedGlobal(pickle.UnpicklingError):
    def __init__(self, name: str, why: str = "is not a tensor, storage or plain container"):
        super().__init__(name)
        self.name, self.why = name, why


def _allowed_globals() -> dict[str, Any]:
    """Name -> object for every global a weight file may name; functions are fresh closures for each
    unpickler, since pickle's BUILD opcode can set attributes on any object it holds."""

    def without_hooks(rebuild, hooks_index: int):
        def rebuild_without_hooks(*args):
            # Serialized backward hooks would be callables run during backward: refused.
            if len(args) > hooks_index and args[hooks_index]:
                raise _RefusedGlobal(f"torch._utils.{rebuild.__name__}", "would attach backward hooks to a tensor")
            args = [OrderedDict() if i == hooks_index else a for i, a in enumerate(args)]
            return rebuild(*args)

        return rebuild_without_hooks

    def rebuild_from_type(*args):
        func, new_type, tensor_args, state = args
        # Tensors with Python attributes: allowed only as plain tensors or parameters.
        if new_type is not torch.Tensor and new_type is not torch.nn.Parameter:
            raise _RefusedGlobal(f"{getattr(new_type, '__module__', '?')}.{getattr(new_type, '__name__', new_type)}",
                                 "is a tensor subclass")
        return torch._tensor._rebuild_from_type_v2(func, new_type, tensor_args, state)

    def latin1_bytes(*args):
        # Protocol 2 stores bytes as _codecs.encode(text, "latin1"); no other codec is needed.
        text, encoding = args
        if encoding not in ("latin1", "latin-1"):
            raise _RefusedGlobal("_codecs.encode", f"is asked for codec {encoding!r}, not latin1")
        return text.encode("latin1")

    def fresh(func):
        return lambda *args: func(*args)

    allowed: dict[str, Any] = {
        "collections.OrderedDict": OrderedDict,
        "builtins.set": set,
        "builtins.frozenset": frozenset,
        "builtins.complex": complex,
        "builtins.bytearray": bytearray,
        "_codecs.encode": latin1_bytes,
        "torch.Size": torch.Size,
        "torch.device": torch.device,
        "torch.Tensor": torch.Tensor,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
        "torch.serialization._get_layout": fresh(torch.serialization._get_layout),
        "torch._utils._rebuild_tensor": fresh(torch._utils._rebuild_tensor),
        "torch._utils._rebuild_tensor_v2": without_hooks(torch._utils._rebuild_tensor_v2, 5),
        "torch._utils._rebuild_tensor_v3": without_hooks(torch._utils._rebuild_tensor_v3, 5),
        "torch._utils._rebuild_parameter": without_hooks(torch._utils._rebuild_parameter, 2),
        "torch._tensor._rebuild_from_type_v2": rebuild_from_type,
    }
    # dtypes pickle by name (`torch.bfloat16`).
    allowed.update({f"torch.{name}": value for name, value in vars(torch).items() if isinstance(value, torch.dtype)})
    return allowed


class AllowListUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals of `_allowed_globals` (torch.load resolves storages)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._allowed = _allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        # Protocols 0-2 store Python 2 names (`__builtin__.set`); map them as pickle itself would.
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        else:
            module = _compat_pickle.IMPORT_MAPPING.get(module, module)
        key = f"{module}.{name}"
        if key in self._allowed:
            return self._allowed[key]
        raise _RefusedGlobal(key)


# What torch.load's `pickle_module` must provide: `Unpickler`, and `load` for the legacy format's headers.
_PICKLE_MODULE = SimpleNamespace(__name__="lit_gpt.io.safe_load", Unpickler=AllowListUnpickler,
                                 load=lambda file, **kwargs: AllowListUnpickler(file, **kwargs).load())


def load_torch_file(path: Union[str, Path, IO[bytes]], mmap: bool = True) -> Any:
    """The object a `torch.save` file (or an open binary file) holds, read through the allow-list onto the
    CPU, memory-mapped when it can be unless `mmap` is False; `UnsafeCheckpointError` naming the refused
    global, or UserError when missing, truncated or foreign."""
    if hasattr(path, "read"):
        mmap = False
    else:
        path = Path(path).expanduser()
        if not path.is_file():
            raise UserError(f"checkpoint not found: {path}")
        if path.stat().st_size == 0:  # torch would say only "EOFError: Ran out of input"
            raise UserError(f"{path}: the file is empty, not a checkpoint")
        mmap = mmap and zipfile.is_zipfile(path)  # the legacy (pre-zip) format and raw pickles cannot be mapped
    try:
        # weights_only=False is how torch.load accepts a `pickle_module`; the allow-list is what keeps this
        # safe (torch's own weights_only unpickler stops at protocol 3).
        return torch.load(path, map_location="cpu", pickle_module=_PICKLE_MODULE, weights_only=False, mmap=mmap)
    except _RefusedGlobal as err:
        raise UnsafeCheckpointError(
            f"{path}: not loaded for safety: it calls for {err.name}, which {err.why}; weight files may hold only "
            "tensors and plain containers, and nothing in this one was run"
        ) from None
    except Exception as err:  # truncated or foreign files: torch and pickle raise many types
        reason = f"{type(err).__name__}: {first_line(err)}" if str(err).strip() else type(err).__name__
        raise UserError(f"{path}: could not read it as a PyTorch checkpoint: {reason}") from None
