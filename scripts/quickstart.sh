#!/usr/bin/env bash
# The main job on the built-in default: set up and build, make ShapesVQA, get the dense `small`
# VLM (the one shipped in models/shapes-small, or train it when that is absent), prune it with
# Wanda 2:4, repair it with RESSA (SparseLoRA + distillation from the dense model), and print
# dense / pruned / repaired accuracy and sparsity. Outputs go under runs/quickstart/.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh ressa  # the CLI only: the test suite is not needed here
R=build/ressa
OUT=runs/quickstart
mkdir -p "$OUT"
[ -f "$OUT/data/test.jsonl" ] || $R data --out "$OUT/data" --seed 0
if [ -f models/shapes-small/model.safetensors ]; then
  DENSE=models/shapes-small
  echo "dense model: $DENSE (shipped; made by the command in models/shapes-small/README.md)"
else
  DENSE="$OUT/dense"
  [ -f "$DENSE/model.safetensors" ] || $R train --data "$OUT/data" --out "$DENSE" --preset small --seed 0 --json "$OUT/train.json"
fi
$R eval --model "$DENSE" --data "$OUT/data" --json "$OUT/eval_dense.json"
$R eval --model "$DENSE" --data "$OUT/data" --blind --json "$OUT/eval_blind.json"
[ -f "$OUT/pruned/model.safetensors" ] ||
  $R prune --model "$DENSE" --data "$OUT/data" --method wanda --pattern 2:4 --out "$OUT/pruned" --json "$OUT/prune.json"
$R eval --model "$OUT/pruned" --data "$OUT/data" --json "$OUT/eval_pruned.json"
[ -f "$OUT/repaired/model.safetensors" ] ||
  $R repair --dense "$DENSE" --pruned "$OUT/pruned" --data "$OUT/data" --out "$OUT/repaired" --json "$OUT/repair.json"
$R eval --model "$OUT/repaired" --data "$OUT/data" --json "$OUT/eval_repaired.json"
$R inspect --model "$OUT/repaired" --pattern 2:4 --json "$OUT/inspect_repaired.json" > /dev/null
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def load(name): return json.load(open(f"{out}/{name}.json"))
print()
print(f"ShapesVQA test split, {load('eval_dense')['n']} questions (blind dense: {100*load('eval_blind')['accuracy']:.1f}%)")
print(f"{'model':<26}{'accuracy':>9}{'vision':>9}{'language':>10}{'overall':>9}")
for label, name in [("dense", "eval_dense"), ("Wanda 2:4, prune only", "eval_pruned"), ("Wanda 2:4 + RESSA", "eval_repaired")]:
    e = load(name); s = e["sparsity"]
    print(f"{label:<26}{100*e['accuracy']:>8.1f}%{100*s['vision']:>8.1f}%{100*s['language']:>9.1f}%{100*s['overall']:>8.1f}%")
print(f"repaired model is 2:4-valid in every pruned layer: {load('inspect_repaired')['nm_valid']}")
PY
