#!/usr/bin/env bash
# The one GPU check (at most 9 minutes, typically 6-8, on one H100/H200): fused-kernel tests, then the training-step
# benchmark on the TinyLlama-1.1B shape and on tiny_LLaMA_1b_mask. Results go to $OUT (default
# out/gpu_check): env.txt, pytest_gpu.log, bench_*.json/.log; the tables are printed last.
#
#   bash scripts/gpu_check.sh                # liger-kernel from .whl/ if present, else as installed
#
# To bring liger-kernel to a machine without a package index, put its wheel in .whl/ first:
#   python3 -m pip download --no-deps --only-binary=:all: -d .whl liger-kernel==0.8.5
# Each stage has its own time limit, and every benchmark rewrites its JSON after each
# configuration, so a slow stage costs its own numbers only.
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

# 1. liger-kernel from carried wheels (pure Python + Triton: nothing to build).
if compgen -G "$ROOT/.whl/*.whl" >/dev/null; then
  stamp "installing $(ls "$ROOT"/.whl/*.whl | xargs -n1 basename | tr '\n' ' ')"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$ROOT"/.whl/*.whl \
    && export PYTHONPATH="/tmp/site:$PYTHONPATH"
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
timeout 100 "$PY" -m pytest -m gpu -q -p no:cacheprovider --continue-on-collection-errors tests 2>&1 \
  | tee "$OUT/pytest_gpu.log" | tail -n 25

# 4. The benchmarks. Order: what the goals compare first, the slow compile later.
bench() {  # name, time limit, args...
  local name=$1 limit=$2; shift 2
  stamp "benchmark $name"
  timeout "$limit" "$PY" scripts/benchmark.py --steps "$STEPS" --warmup "$WARMUP" "$@" \
    --json "$OUT/bench_$name.json" --overwrite >"$OUT/bench_$name.txt" 2>"$OUT/bench_$name.log"
  echo "exit $?" >>"$OUT/bench_$name.log"
  tail -n 3 "$OUT/bench_$name.log"
}
bench tinyllama_1b 230 --model_name tiny_LLaMA_1b --micro_batch_size 8 --seq_len 2048 \
  --variants fused hf_liger compile eager hf
# Up to ~1 s per step at the largest batch (H200): fewer steps keep compile within the limit.
bench 1b_mask 230 --model_name tiny_LLaMA_1b_mask --micro_batch_size auto --seq_len 4096 \
  --variants fused hf_liger compile --steps 6 --warmup 2

# 5. The tables, last (also from a run cut short: its JSON holds what it finished).
stamp "done"
"$PY" - "$OUT"/bench_tinyllama_1b.json "$OUT"/bench_1b_mask.json <<'EOF'
import json, sys
from pathlib import Path
from lit_gpt.bench.report import format_table
for path in map(Path, sys.argv[1:]):
    print()
    if not path.exists():
        print(f"{path.name}: no result")
        continue
    report = json.loads(path.read_text())
    print(format_table(report) + ("" if report.get("complete") else "\n(cut short: configurations after the last row did not finish)"))
EOF
