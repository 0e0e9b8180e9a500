#!/bin/bash
# Data-parallel repair benchmark (docs/benchmarks.md): `ressa repair --steps 40 --threads 1` as
# 1 process vs `ressa launch --nproc 2` (2 processes × 1 thread), interleaved REPS times, on a
# `small`-preset model (PRESET=tiny for the tiny one; briefly trained: speed, not accuracy)
# pruned 2:4 with Wanda. Prints load average, wall time, samples/s and the largest
# per-tensor difference between the two merged models.
# Usage: bench/dist_repair.sh BUILD_DIR WORK_DIR [REPS]
set -euo pipefail
B=$(realpath "$1")/ressa; W=$2; REPS=${3:-2}
HERE=$(dirname "$(realpath "$0")")
mkdir -p "$W" && cd "$W"
if [ ! -d pruned ]; then
  $B data --out data --train 1500 --val 50 --test 50 >/dev/null 2>&1
  $B train --data data --out dense --preset "${PRESET:-small}" --steps 10 --batch 8 --threads 1 >/dev/null 2>&1
  $B prune --model dense --data data --method wanda --pattern 2:4 --calib-samples 32 --threads 1 --out pruned >/dev/null 2>&1
fi
A="--dense dense --pruned pruned --data data --steps 40 --val-limit 0 --threads 1"
for i in $(seq "$REPS"); do
  for mode in 1 2; do
    load=$(cut -d' ' -f1 /proc/loadavg)
    t0=$(date +%s.%N)
    # /usr/bin/time counts the CPU of the launcher's children too (they are waited for).
    if [ $mode = 1 ]; then /usr/bin/time -f "%U %S" -o cpu.txt $B repair $A --out r$mode --json r$mode.json 2>/dev/null
    else /usr/bin/time -f "%U %S" -o cpu.txt $B launch --nproc 2 -- repair $A --out r$mode --json r$mode.json >/dev/null 2>&1; fi
    t1=$(date +%s.%N)
    sps=$(/usr/bin/python3 -c "import json;print(round(json.load(open('r$mode.json'))['samples_per_s'],1))")
    echo "rep $i procs $mode load1 $load wall $(echo "$t1 - $t0" | bc) s loop samples/s $sps cpu(user sys) $(cat cpu.txt)"
  done
  /usr/bin/python3 "$HERE/../scripts/model_diff.py" r1 r2
done
