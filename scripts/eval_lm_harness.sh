#!/usr/bin/env bash
# Commonsense-reasoning scores of an exported Hugging Face model with lm-evaluation-harness,
# on the paper's tasks (ARC-e, ARC-c, HellaSwag, PIQA, WinoGrande, OBQA, BoolQ).
#
#   scripts/eval_lm_harness.sh HF_DIR [TASKS] [OUT] [LM_EVAL_OPTIONS...]
#
# TASKS: comma-separated lm_eval task names (default: the paper's seven).
# OUT:   output folder (default: HF_DIR/lm_eval).
# LM_EVAL_OPTIONS: everything from the first argument starting with "-" on goes to lm_eval as is,
#   e.g. --include_path my_tasks/ --limit 100 --num_fewshot 0 (a leading "--" is dropped);
#   --dtype DTYPE sets the model dtype instead.
# Environment:
#   LM_EVAL_OFFLINE=1   no network: datasets from HF_DATASETS_CACHE, model files from HF_DIR only
#   LM_EVAL_DTYPE       float32, bfloat16, float16 (default: bfloat16 on a GPU, float32 on the CPU,
#                       whose bfloat16 matmuls are slow and round the scores)
#   LM_EVAL_BATCH_SIZE  default: auto on a GPU, 1 on the CPU
#   LM_EVAL_DEVICE      passed to --device when set (cuda:0, cpu, ...)
#   LM_EVAL_ARGS        extra arguments for lm_eval, split into words
#   LM_EVAL_PYTHON      the Python asked whether a GPU is visible (default: python3)
set -euo pipefail

usage="usage: $0 HF_DIR [TASKS] [OUT] [LM_EVAL_OPTIONS...]"
if [[ $# -lt 1 || "$1" == "-h" || "$1" == "--help" ]]; then
  echo "$usage" >&2
  exit 2
fi
positional=()
while [[ $# -gt 0 && "$1" != -* && ${#positional[@]} -lt 3 ]]; do
  positional+=("$1")
  shift
done
if [[ $# -gt 0 && "$1" != -* ]]; then
  echo "error: unexpected argument '$1'; $usage" >&2
  exit 2
fi
[[ "${1:-}" == "--" ]] && shift
dtype=${LM_EVAL_DTYPE:-}
passthrough=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --dtype) [[ $# -ge 2 ]] || { echo "error: --dtype needs a value" >&2; exit 2; }
             dtype=$2; shift 2 ;;
    --dtype=*) dtype=${1#--dtype=}; shift ;;
    *) passthrough+=("$1"); shift ;;
  esac
done

HF_DIR=${positional[0]}
TASKS=${positional[1]:-arc_easy,arc_challenge,hellaswag,piqa,winogrande,openbookqa,boolq}
OUT=${positional[2]:-$HF_DIR/lm_eval}

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

# GPU or CPU decides the defaults: the device asked for, else what torch sees.
device_kind=cpu
if [[ -n "${LM_EVAL_DEVICE:-}" ]]; then
  [[ "$LM_EVAL_DEVICE" == cpu* ]] || device_kind=gpu
elif [[ "$("${LM_EVAL_PYTHON:-python3}" -c 'import torch; print(torch.cuda.is_available())' 2>/dev/null || true)" == "True" ]]; then
  device_kind=gpu
fi
if [[ "$device_kind" == gpu ]]; then
  dtype=${dtype:-bfloat16}
  batch_size=${LM_EVAL_BATCH_SIZE:-auto}
else
  dtype=${dtype:-float32}
  batch_size=${LM_EVAL_BATCH_SIZE:-1}
fi

args=(--model hf
      --model_args "pretrained=$HF_DIR,dtype=$dtype"
      --tasks "$TASKS"
      --batch_size "$batch_size"
      --output_path "$OUT")
if [[ -n "${LM_EVAL_DEVICE:-}" ]]; then
  args+=(--device "$LM_EVAL_DEVICE")
fi
# shellcheck disable=SC2206  # LM_EVAL_ARGS is meant to be split into words
extra=(${LM_EVAL_ARGS:-})

echo "lm_eval ${args[*]} ${extra[*]} ${passthrough[*]}  (on $device_kind)"
exec lm_eval "${args[@]}" "${extra[@]}" "${passthrough[@]}"
