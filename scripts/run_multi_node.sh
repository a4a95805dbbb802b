#!/usr/bin/env bash
# MEAP pretraining on one or more nodes, from any directory.
#
#   bash scripts/run_multi_node.sh RECIPE --num_nodes N --devices G [--key value ...]
#
# Rendezvous follows the Lightning Fabric conventions:
# - SLURM: one task per GPU, e.g.
#     #SBATCH --nodes=2 --ntasks-per-node=8 --gpus-per-node=8 --signal=USR1@120
#     srun bash scripts/run_multi_node.sh pretrained/meap_1b.py --num_nodes 2 --devices 8 --resume auto
#   Fabric reads SLURM_PROCID, SLURM_NODELIST, ... itself; SIGUSR1 saves a checkpoint and stops.
#   A ready batch script: scripts/slurm_pretrain.sbatch.
# - Anything else: run this once per node with MASTER_ADDR, MASTER_PORT and NODE_RANK set, e.g.
#     MASTER_ADDR=node0 MASTER_PORT=29500 NODE_RANK=1 bash scripts/run_multi_node.sh ... --num_nodes 2 --devices 8
#   Fabric starts the G processes of the node. (torchrun also works: torchrun --nnodes ... \
#   MEAP-Pretrain/pretrain.py --config RECIPE --num_nodes N --devices G.)
#
# The trainer runs in the repository root, so a recipe's relative paths (data/c4_bin, out/...)
# point into the repository; relative paths given on this command line are made absolute first.
# OMP_NUM_THREADS defaults to the node's cores / processes per node (at least 1) unless set.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"

usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2; }
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s' "$PWD/$1" ;; esac; }

if [[ $# -lt 1 || "$1" == -* ]]; then
  usage
  exit 2
fi
if [[ ! -f "$1" ]]; then
  echo "error: recipe not found: $1" >&2
  exit 2
fi
recipe="$(absolute "$1")"
shift

args=()
num_nodes=1
devices=-1
while [[ $# -gt 0 ]]; do
  key="$1"
  value=""
  if [[ "$key" == --*=* ]]; then
    value="${key#*=}"
    key="${key%%=*}"
    shift
  elif [[ "$key" == --* && $# -ge 2 ]]; then
    value="$2"
    shift 2
  else
    args+=("$key")
    shift
    continue
  fi
  case "$key" in
    --train_data_dir | --val_data_dir | --tokenizer_dir | --out_dir)
      value="$(absolute "$value")" ;;
    --resume)
      [[ "$value" == auto ]] || value="$(absolute "$value")" ;;
    --num_nodes)
      num_nodes="$value" ;;
    --devices)
      devices="$value" ;;
  esac
  args+=("$key" "$value")
done

if [[ "$num_nodes" != 1 && -z "${SLURM_PROCID:-}" && -z "${MASTER_ADDR:-}" ]]; then
  echo "error: --num_nodes $num_nodes needs MASTER_ADDR, MASTER_PORT and NODE_RANK (or a SLURM job step)" >&2
  exit 2
fi

# One process per device on a node: without this each one's OpenMP pool spans every core, and the
# processes' masking and collate work contend for them. The user's own setting wins.
if [[ -z "${OMP_NUM_THREADS:-}" ]]; then
  cores="$(nproc 2>/dev/null || getconf _NPROCESSORS_ONLN 2>/dev/null || echo 1)"
  per_node="$devices"
  if [[ "$per_node" == -1 ]]; then
    per_node="$("$PY" -c 'import torch; print(max(torch.cuda.device_count(), 1))' 2>/dev/null || echo 1)"
  fi
  export OMP_NUM_THREADS=$(( cores / per_node > 0 ? cores / per_node : 1 ))
fi

cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
exec "$PY" MEAP-Pretrain/pretrain.py --config "$recipe" "${args[@]}"
