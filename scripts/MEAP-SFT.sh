#!/usr/bin/env bash
# MEAP-SFT of Llama-3-8B (base) on Alpaca, the paper's setting (SPEC §3): MEAP "concat" mode,
# mask ratio 0.1, 2 epochs (the NTP baseline runs 4 epochs to see as many tokens), bf16,
# max length 4096, gradient checkpointing, DeepSpeed ZeRO-2 (or FSDP) through accelerate.
#
#   MODEL_DIR=/models/Meta-Llama-3-8B DATA=/data/alpaca_data.json OUT=runs/llama3-8b-alpaca-meap \
#   NUM_GPUS=8 bash scripts/MEAP-SFT.sh [extra sft.py / TrainingArguments options]
#
# BACKEND=deepspeed (default, ZeRO-2), fsdp (accelerate's FSDP) or none (plain DDP through
# torchrun, or one process when NUM_GPUS=1: small models, debugging; on CPU add --use_cpu).
# PRESET=upstream builds the upstream code's examples token for token (sft.py --preset upstream).
# Learning rate, batch and warmup are the usual Alpaca full fine-tuning values; the paper does
# not list them. Needs: pip install -r MEAP-SFT/requirements.txt (+ deepspeed for BACKEND=deepspeed)
set -euo pipefail

MODEL_DIR=${MODEL_DIR:?set MODEL_DIR to the local Llama-3-8B folder (Hugging Face format)}
DATA=${DATA:?set DATA to the Alpaca JSON file, e.g. alpaca_data.json}
OUT=${OUT:?set OUT to a new output folder}
NUM_GPUS=${NUM_GPUS:-8}
BACKEND=${BACKEND:-deepspeed}   # deepspeed (ZeRO-2), fsdp or none
PRESET=${PRESET:-default}       # default (the paper: concat, alpaca template) or upstream (its examples)
GLOBAL_BATCH=${GLOBAL_BATCH:-128}
MICRO_BATCH=${MICRO_BATCH:-2}

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ACCUM=$(( GLOBAL_BATCH / (NUM_GPUS * MICRO_BATCH) ))
if (( ACCUM < 1 || ACCUM * NUM_GPUS * MICRO_BATCH != GLOBAL_BATCH )); then
  echo "error: GLOBAL_BATCH=$GLOBAL_BATCH is not a multiple of NUM_GPUS*MICRO_BATCH=$(( NUM_GPUS * MICRO_BATCH ))" >&2
  exit 2
fi

if [[ "$BACKEND" == fsdp ]]; then
  # activation checkpointing comes from FSDP itself here, so no --activation_checkpointing
  LAUNCH=(accelerate launch --config_file "$REPO/scripts/fsdp_llama.yaml" --num_processes "$NUM_GPUS")
  BACKEND_ARGS=(--torch_dtype float32)
elif [[ "$BACKEND" == deepspeed ]]; then
  LAUNCH=(accelerate launch --use_deepspeed --deepspeed_config_file "$REPO/scripts/ds_zero2.json"
          --mixed_precision bf16 --num_machines 1 --num_processes "$NUM_GPUS")
  BACKEND_ARGS=(--torch_dtype bfloat16 --activation_checkpointing)  # DeepSpeed keeps fp32 master weights
elif [[ "$BACKEND" == none ]]; then
  if (( NUM_GPUS == 1 )); then
    LAUNCH=("${PYTHON:-python3}")
  else
    LAUNCH=(torchrun --standalone --nproc_per_node "$NUM_GPUS")
  fi
  BACKEND_ARGS=(--torch_dtype float32)  # fp32 weights, bf16 autocast
else
  echo "error: BACKEND must be deepspeed, fsdp or none, got '$BACKEND'" >&2
  exit 2
fi

if [[ "$PRESET" == upstream ]]; then
  PRESET_ARGS=(--preset upstream)  # its examples token for token: separate copies, its llama3 template
elif [[ "$PRESET" == default ]]; then
  PRESET_ARGS=(--template_name alpaca --meap_mode concat --min_answer_tokens 50)
else
  echo "error: PRESET must be default or upstream, got '$PRESET'" >&2
  exit 2
fi

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
# --warmup_steps below 1 is a fraction of the training steps (transformers 5 dropped --warmup_ratio).
# Options given to this script come last and override these.
"${LAUNCH[@]}" "$REPO/MEAP-SFT/sft.py" \
  --model_name_or_path "$MODEL_DIR" \
  --train_file "$DATA" \
  --output_dir "$OUT" \
  "${PRESET_ARGS[@]}" --mask_ratio 0.1 \
  --model_max_length 4096 \
  --num_train_epochs 2 \
  --per_device_train_batch_size "$MICRO_BATCH" \
  --gradient_accumulation_steps "$ACCUM" \
  --learning_rate 2e-5 --lr_scheduler_type cosine --weight_decay 0.0 \
  --warmup_steps 0.03 \
  --bf16 \
  --logging_steps 10 --save_strategy epoch --save_total_limit 2 \
  --dataloader_num_workers 2 \
  --report_to none \
  "${BACKEND_ARGS[@]}" "$@"

# NTP baseline, the same tokens seen (the paper): rerun with another OUT and
#   bash scripts/MEAP-SFT.sh --meap_mode ntp --num_train_epochs 4
