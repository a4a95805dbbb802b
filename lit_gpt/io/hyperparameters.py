"""`hyperparameters.yaml`: the resolved settings of a run, next to its checkpoints (as litgpt does);
rewritten atomically at every start (a resume records that invocation's settings; each checkpoint
keeps the settings it was saved with)."""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Any

HYPERPARAMETERS = "hyperparameters.yaml"


def plain(value: Any) -> Any:
    """`value` as YAML-safe built-in types (enums by value, paths and unknown objects as strings)."""
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v) for v in value]
    return str(value)


def write_hyperparameters(folder: str | Path, settings: dict[str, Any]) -> Path:
    import yaml

    from lit_gpt.io.atomic import write_text

    return write_text(Path(folder) / HYPERPARAMETERS, yaml.safe_dump(plain(settings), sort_keys=False, allow_unicode=True))
