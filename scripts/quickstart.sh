#!/usr/bin/env bash
# The embedded default, end to end, on a CPU machine in a few minutes:
#   set up -> prepare the sample corpus -> MEAP-pretrain meap_tiny -> validation loss
#   -> convert to Hugging Face -> generate -> passkey retrieval evaluation.
# Everything is written under out/ (override with OUT=...). Re-running resumes where it stopped.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"
OUT="${OUT:-$ROOT/out}"
cd "$ROOT"

bash scripts/setup.sh

echo; echo "== 1/5 prepare the embedded corpus (data/sample) into packed chunks"
"$PY" data_process/prepare_c4.py --source_path data/sample --destination_path "$OUT/sample_bin" \
  --tokenizer_dir data/tokenizer --chunk_size 8224

echo; echo "== 2/5 MEAP-pretrain meap_tiny (mask_ratio 0.15)"
"$PY" MEAP-Pretrain/pretrain.py --config pretrained/meap_tiny.py \
  --train_data_dir "$OUT/sample_bin" --out_dir "$OUT/meap_tiny" --resume auto "$@"
CKPT="$(ls "$OUT"/meap_tiny/step-*.pth | sort | tail -n 1)"

echo; echo "== 3/5 convert $CKPT to a Hugging Face folder"
"$PY" convert/convert_lit_checkpoint.py --checkpoint_name "$CKPT" --out_dir "$OUT/meap_tiny_hf" \
  --dtype float32 --overwrite

echo; echo "== 4/5 generate with the converted model (greedy)"
"$PY" scripts/generate.py --model_dir "$OUT/meap_tiny_hf" --device cpu --max_new_tokens 12 \
  --prompt "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. The pass key is 48213. Remember it. 48213 is the pass key. The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again. What is the pass key? The pass key is" \
  --prompt "The mathematician"

echo; echo "== 5/5 passkey retrieval (contexts of 128 and 192 tokens, 3 depths): accuracy and answer log-probability"
"$PY" -m lit_gpt.eval.retrieval --model_dir "$OUT/meap_tiny_hf" --task passkey --context_lengths 128,192 \
  --depths 0,0.5,1 --samples 4 --device cpu --out_dir "$OUT/meap_tiny_eval" --overwrite

cat <<MSG

Done. Written:
  $OUT/sample_bin/          packed token chunks + manifest.json
  $OUT/meap_tiny/           checkpoints step-*.pth and metrics.csv (plot: python scripts/plot_runs.py $OUT/meap_tiny --out curves.png)
  $OUT/meap_tiny_hf/        Hugging Face model (safetensors) + tokenizer with [MASK]
  $OUT/meap_tiny_eval/      results.json, heatmap.png (accuracy) and logprob_heatmap.png (answer log-probability)

Next, MEAP against NTP with confidence intervals (meap_tiny, 2 seeds x 2 arms, on the CPU; see README):
  python scripts/meap_vs_ntp.py --config pretrained/meap_tiny.py --seeds 2 --train_data_dir $OUT/sample_bin --out_dir $OUT/cmp_tiny
MSG
