#!/usr/bin/env bash
# Peak memory and time of ressa's commands on LLaVA checkpoints of real sizes with random fp16
# weights (docs/benchmarks.md "Memory at real sizes"). Writes the checkpoint with
# bench/random_checkpoint.py (no download), runs each step under /usr/bin/time -v, prints one
# row per step (seconds, peak RSS) and deletes the checkpoint.
# Usage: bench/memory.sh BUILD_DIR WORK_DIR [7b|1b] [THREADS] [STEPS]
#   STEPS: a quoted list of generate eval wanda sparsegpt repair (default: the first four, in that
#   order); repair (SparseLoRA + KD, 20 steps of one conversation, --micro-batch 1 --checkpointing)
#   repairs the model the latest wanda or sparsegpt step pruned
#   7b: the verbatim config.json of llava-hf/llava-1.5-7b-hf (14 GB on disk; ~2 min to write)
#   1b: TinyLlama-1.1B text + CLIP ViT-L/14-336 (bench/configs/tinyllama-1.1b-clip-l336.json; 2.8 GB)
set -euo pipefail
BUILD=${1:?build dir}; WORK=${2:?work dir}; SIZE=${3:-1b}; T=${4:-2}; STEPS=${5:-generate eval wanda sparsegpt}
HERE="$(cd "$(dirname "$0")" && pwd)"; R="$(cd "$BUILD" && pwd)/ressa"
case "$SIZE" in
  7b) CFG="$HERE/../tests/fixtures/hf_configs/llava-1.5-7b-hf/config.json" ;;
  1b) CFG="$HERE/configs/tinyllama-1.1b-clip-l336.json" ;;
  *) echo "error: size must be 7b or 1b, got $SIZE" >&2; exit 2 ;;
esac
mkdir -p "$WORK"; WORK="$(cd "$WORK" && pwd)"; M="$WORK/model-$SIZE"
trap 'rm -rf "$M" "$WORK/pruned-$SIZE" "$WORK/repaired-$SIZE" "$WORK/repaired-$SIZE.ckpt"' EXIT
/usr/bin/python3 "$HERE/random_checkpoint.py" "$CFG" "$M"
PHOTOS="$HERE/../tests/fixtures/image_processor/inputs"
# 16 calibration conversations about the fixture photos (LLaVA format).
/usr/bin/python3 - "$PHOTOS" "$WORK/calib.json" <<'PY'
import json, os, sys
photos, out = sys.argv[1], sys.argv[2]
items = [{"id": str(i), "image": f, "conversations": [
    {"from": "human", "value": "<image>\nWhat is in the picture? Describe it."},
    {"from": "gpt", "value": "A photograph with several objects and colours in it."}]}
    for i, f in enumerate(sorted(os.listdir(photos))[:16])]
json.dump(items, open(out, "w"))
PY
step() {  # name, then the ressa arguments
  local name=$1; shift
  /usr/bin/time -v "$R" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err" || { tail -5 "$WORK/$name.err"; return 1; }
  local rss s
  rss=$(awk '/Maximum resident set size/{print $6}' "$WORK/$name.err")
  s=$(awk '/Elapsed \(wall clock\)/{print $8}' "$WORK/$name.err")
  printf "| %s | %s | %s | %.2f |\n" "$SIZE" "$name" "$s" "$(echo "$rss / 1048576" | bc -l)"
}
echo "checkpoint: $(du -sh "$M" | cut -f1) fp16 ($SIZE), $T threads, $(lscpu | awk -F: '/Model name/{gsub(/^ +/,"",$2); print $2}')"
echo "| model | step | wall (m:ss) | peak RSS (GiB) |"
echo "|---|---|---|---|"
IMG="$PHOTOS/a_333x500.jpg"
for what in $STEPS; do
  case "$what" in
    generate) step generate generate --model "$M" --image "$IMG" --prompt "What is in the picture?" \
      --max-new-tokens 16 --threads "$T" --json "$WORK/generate-$SIZE.json" ;;
    eval) step eval eval --model "$M" --data "$WORK/calib.json" --image-folder "$PHOTOS" --limit 4 \
      --max-new-tokens 4 --batch 1 --threads "$T" ;;
    wanda) rm -rf "$WORK/pruned-$SIZE"; step prune-wanda-50 prune --model "$M" --data "$WORK/calib.json" \
      --image-folder "$PHOTOS" --method wanda --sparsity 0.5 --calib-samples 16 --out "$WORK/pruned-$SIZE" --threads "$T" ;;
    sparsegpt) rm -rf "$WORK/pruned-$SIZE"; step prune-sparsegpt-2:4 prune --model "$M" --data "$WORK/calib.json" \
      --image-folder "$PHOTOS" --method sparsegpt --pattern 2:4 --calib-samples 16 --out "$WORK/pruned-$SIZE" --threads "$T" ;;
    repair) rm -rf "$WORK/repaired-$SIZE"; step repair-20 repair --dense "$M" --pruned "$WORK/pruned-$SIZE" \
      --data "$WORK/calib.json" --image-folder "$PHOTOS" --out "$WORK/repaired-$SIZE" --steps 20 --batch 1 \
      --micro-batch 1 --checkpointing --checkpoint-every 0 --threads "$T" ;;
    *) echo "error: unknown step $what (generate, eval, wanda, sparsegpt, repair)" >&2; exit 2 ;;
  esac
done
