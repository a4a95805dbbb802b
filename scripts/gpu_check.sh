#!/usr/bin/env bash
# The one GPU check (at most 9 minutes, typically 6-8, on one H100/H200): the GPU tests, then the
# training-step benchmark on the TinyLlama-1.1B shape and on tiny_LLaMA_1b_mask. Results go to
# $OUT (default out/gpu_check): env.txt, pytest_gpu.log, bench_*.json/.txt/.log; the tables are
# printed last.
#
#   bash scripts/gpu_check.sh
#
# liger-kernel is installed from .whl/ when wheels are there (for machines without a package
# index: `python3 -m pip download --no-deps --only-binary=:all: -d .whl liger-kernel==0.8.5`
# where pip works), else with pip when it is missing. Each stage has its own time limit, and
# every benchmark rewrites its JSON as it goes, so a slow stage costs its own numbers only.
# All variants of one benchmark stay on the device together (about 12 bytes per parameter each,
# plus the step): cards under 100 GiB run only the variants the goals compare.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
OUT="${OUT:-$ROOT/out/gpu_check}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
STEPS="${STEPS:-8}"
WARMUP="${WARMUP:-3}"
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
start=$(date +%s)
stamp() { echo "[gpu_check +$(( $(date +%s) - start ))s] $*"; }

# 1. liger-kernel (pure Python + Triton: nothing to build).
if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
  stamp "installing $(ls "$ROOT"/.whl/*.whl | xargs -n1 basename | tr '\n' ' ')"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$ROOT"/.whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
elif ! "$PY" -c "import liger_kernel" >/dev/null 2>&1; then
  stamp "installing liger-kernel"
  timeout 60 "$PY" -m pip install -q --disable-pip-version-check --retries 0 --timeout 10 "liger-kernel>=0.6.2" \
    || stamp "liger-kernel could not be installed: the fused rows will show the PyTorch kernels"
fi

# 2. What this machine is.
{
  nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  "$PY" - <<'EOF' 2>&1
import importlib.metadata as md, torch
for name in ("torch", "triton", "transformers", "liger-kernel", "flash-attn", "lightning"):
    try:
        print(f"{name} {md.version(name)}")
    except md.PackageNotFoundError:
        print(f"{name} -")
print("cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version(), "device", torch.cuda.get_device_name())
from lit_gpt.kernels import active_kernels
print("kernels", active_kernels(torch.device("cuda")))
EOF
} | tee "$OUT/env.txt"

# 3. Every fused kernel against its PyTorch reference (and the other GPU-marked tests).
stamp "pytest -m gpu"
timeout 90 "$PY" -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors tests 2>&1 \
  | tee "$OUT/pytest_gpu.log" | tail -n 25

# 4. The benchmarks (variants are timed in rounds: their order does not matter).
bench() {  # name, time limit, args...
  local name=$1 limit=$2; shift 2
  stamp "benchmark $name"
  timeout "$limit" "$PY" scripts/benchmark.py --steps "$STEPS" --warmup "$WARMUP" "$@" \
    --json "$OUT/bench_$name.json" --overwrite >"$OUT/bench_$name.txt" 2>"$OUT/bench_$name.log"
  echo "exit $?" >>"$OUT/bench_$name.log"
  tail -n 3 "$OUT/bench_$name.log"
}
# Five 1.1B-parameter variants resident at once need ~60 GiB (weights + AdamW moments) before any activation.
GIB=$("$PY" -c "import torch; print(torch.cuda.get_device_properties(0).total_memory // 2**30)" 2>/dev/null || echo 0)
if [ "$GIB" -ge 100 ]; then VARIANTS_1B="fused hf_liger compile eager hf"; else VARIANTS_1B="fused hf_liger compile"; fi
# shellcheck disable=SC2086
bench tinyllama_1b 220 --model_name tiny_LLaMA_1b --micro_batch_size 8 --seq_len 2048 --variants $VARIANTS_1B
# Up to ~1 s per step at the largest batch (H200): fewer rounds keep compile within the limit.
bench 1b_mask 200 --model_name tiny_LLaMA_1b_mask --micro_batch_size auto --seq_len 4096 \
  --variants fused hf_liger compile --steps 6 --warmup 2

# 5. The tables, last (also from a run cut short: its JSON holds what it finished).
stamp "done"
"$PY" - "$OUT"/bench_tinyllama_1b.json "$OUT"/bench_1b_mask.json <<'EOF'
import json, sys
from pathlib import Path
from tools.bench.report import format_table
for path in map(Path, sys.argv[1:]):
    print()
    if not path.exists():
        print(f"{path.name}: no result")
        continue
    report = json.loads(path.read_text())
    print(format_table(report) + ("" if report.get("complete") else "\n(cut short: configurations after the last row did not finish)"))
EOF
