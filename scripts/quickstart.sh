#!/usr/bin/env bash
# The main job on the built-in default: set up, make ShapesVQA, train the dense `small` VLM,
# and evaluate it (with and without the image). Outputs go under runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
R=build/ressa
OUT=runs/quickstart
mkdir -p "$OUT"
[ -f "$OUT/data/test.jsonl" ] || $R data --out "$OUT/data" --seed 0
[ -f "$OUT/dense/model.safetensors" ] || $R train --data "$OUT/data" --out "$OUT/dense" --preset small --seed 0 --json "$OUT/train.json"
$R eval --model "$OUT/dense" --data "$OUT/data" --json "$OUT/eval.json"
$R eval --model "$OUT/dense" --data "$OUT/data" --blind --json "$OUT/eval_blind.json"
echo "dense accuracy: $(python3 -c "import json;print(json.load(open('$OUT/eval.json'))['accuracy'])")"
echo "blind accuracy: $(python3 -c "import json;print(json.load(open('$OUT/eval_blind.json'))['accuracy'])")"
