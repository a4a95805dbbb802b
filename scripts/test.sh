#!/usr/bin/env bash
# Sets the project up and runs the test suite (CPU; GPU-only tests are skipped without CUDA).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$ROOT/scripts/setup.sh"
cd "$ROOT"
# One test worker per core, at most 4 (the multi-process tests start 2-4 processes of their own); each
# test file stays on one worker, so a module's shared fixtures (a reference run, the interpreted
# Triton child) are built once. PYTEST_WORKERS=0 runs everything in this process.
WORKERS="${PYTEST_WORKERS:-$("${PYTHON:-python3}" -c 'import os; print(min(4, len(os.sched_getaffinity(0))))')}"
exec "${PYTHON:-python3}" -m pytest -q -n "$WORKERS" --dist loadfile "$@"
