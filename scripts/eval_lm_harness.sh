#!/usr/bin/env bash
# Commonsense-reasoning scores of an exported Hugging Face model with lm-evaluation-harness,
# on the paper's tasks (ARC-e, ARC-c, HellaSwag, PIQA, WinoGrande, OBQA, BoolQ).
#
#   scripts/eval_lm_harness.sh HF_DIR [TASKS] [OUT]
#
# TASKS: comma-separated lm_eval task names (default: the paper's seven).
# OUT:   output folder (default: HF_DIR/lm_eval).
# Environment:
#   LM_EVAL_OFFLINE=1   no network: datasets from HF_DATASETS_CACHE, model files from HF_DIR only
#   LM_EVAL_DTYPE       bfloat16 (default), float16 or float32
#   LM_EVAL_BATCH_SIZE  auto (default) or a number
#   LM_EVAL_DEVICE      passed to --device when set (cuda:0, cpu, ...)
#   LM_EVAL_ARGS        extra arguments for lm_eval, e.g. "--limit 100 --num_fewshot 0"
set -euo pipefail

if [[ $# -lt 1 || $# -gt 3 || "$1" == "-h" || "$1" == "--help" ]]; then
  echo "usage: $0 HF_DIR [TASKS] [OUT]" >&2
  exit 2
fi
HF_DIR=$1
TASKS=${2:-arc_easy,arc_challenge,hellaswag,piqa,winogrande,openbookqa,boolq}
OUT=${3:-$HF_DIR/lm_eval}

if [[ ! -f "$HF_DIR/config.json" ]]; then
  echo "error: $HF_DIR has no config.json; export a lit checkpoint to a Hugging Face folder first" >&2
  exit 2
fi
if ! command -v lm_eval >/dev/null 2>&1; then
  echo "error: lm_eval is not installed; install it with: pip install lm-eval" >&2
  exit 2
fi
if [[ "${LM_EVAL_OFFLINE:-0}" == "1" ]]; then
  export HF_DATASETS_OFFLINE=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
fi

args=(--model hf
      --model_args "pretrained=$HF_DIR,dtype=${LM_EVAL_DTYPE:-bfloat16}"
      --tasks "$TASKS"
      --batch_size "${LM_EVAL_BATCH_SIZE:-auto}"
      --output_path "$OUT")
if [[ -n "${LM_EVAL_DEVICE:-}" ]]; then
  args+=(--device "$LM_EVAL_DEVICE")
fi
# shellcheck disable=SC2206  # LM_EVAL_ARGS is meant to be split into words
extra=(${LM_EVAL_ARGS:-})

echo "lm_eval ${args[*]} ${extra[*]}"
exec lm_eval "${args[@]}" "${extra[@]}"
