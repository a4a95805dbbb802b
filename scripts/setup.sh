#!/usr/bin/env bash
# Installs the project (editable) with every extra of pyproject.toml, the one list of dependencies,
# into the current Python environment. A torch that is already installed (for example your CUDA
# build) is kept; only when none is importable is torch 2.13.0 installed. Every requirement is a
# range that accepts it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"

if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "[setup] installing torch 2.13.0"
  "$PY" -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
fi
echo "[setup] installing the project and its dependencies (pyproject.toml, extras: all)"
"$PY" -m pip install --quiet --disable-pip-version-check -e "$ROOT[all]"
"$PY" -c "import torch, lit_gpt; print(f'[setup] ready: torch {torch.__version__}, cuda available: {torch.cuda.is_available()}')"
