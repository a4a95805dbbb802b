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
if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
  # The help is the comment block at the top of this file.
  sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//'
  exit 0
fi
if [[ $# -lt 1 ]]; then
  echo "$usage (--help for more)" >&2
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
# lm_eval's stderr passes through as it comes, except a traceback, which is held back: when it says a
# dataset could not be fetched in offline mode it becomes one line naming the dataset (status 2);
# any other traceback is printed as it was.
set +e
{ lm_eval "${args[@]}" "${extra[@]}" "${passthrough[@]}" 2>&1 1>&3 3>&- | awk -v tasks="$TASKS" '
  /^Traceback \(most recent call last\):/ { held = 1 }
  held {
    trace = trace $0 "\n"
    # The exception line (not indented) names the dataset; quoted source lines above it do not.
    if ($0 !~ /^[ \t]/ && match($0, /reach \x27[^\x27]+\x27/)) name = "dataset " substr($0, RSTART + 6, RLENGTH - 6)
    next
  }
  { print; fflush() }
  END {
    if (trace ~ /OfflineModeIsEnabled|offline mode is enabled/) {
      if (name == "") name = "a dataset"
      printf "error: %s (for tasks %s) is not on disk and LM_EVAL_OFFLINE=1 forbids downloading it: run once online with the same HF_HOME (or HF_DATASETS_CACHE), or pass --include_path with a task YAML whose dataset_path is a local copy\n", name, tasks
      exit 3
    }
    printf "%s", trace
  }' >&2; } 3>&1
statuses=("${PIPESTATUS[@]}")
set -e
if [[ "${statuses[1]}" == 3 ]]; then
  exit 2
fi
exit "${statuses[0]}"
