#!/usr/bin/env bash
# Sets the project up and runs the test suite (CPU; GPU-only tests are skipped without CUDA).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
exec "${PYTHON:-python3}" -m pytest -q "$@"
