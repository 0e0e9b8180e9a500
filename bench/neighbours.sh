#!/usr/bin/env bash
# Thread policy under neighbours (docs/benchmarks.md "Sharing the machine"): wall time of one
# `ressa repair --steps 30` (and one `ressa eval --limit 400`) alone, then of two started together,
# for each environment given (default: ressa's own policy, then the policies it was chosen over).
# Usage: bench/neighbours.sh BUILD_DIR WORK_DIR ["ENV ..." ...]
#   WORK_DIR gets a ShapesVQA dataset and a Wanda 2:4 copy of models/shapes-small (made once).
# Prints one line per policy and command: alone s, pair s (each), ratio pair/alone.
set -euo pipefail
BUILD=${1:?build dir}; W=${2:?work dir}; shift 2
R="$BUILD/ressa"; M="$(cd "$(dirname "$0")/.." && pwd)/models/shapes-small"
mkdir -p "$W"
[ -f "$W/data/test.jsonl" ] || "$R" data --out "$W/data" --train 2000 --val 100 --test 400 >/dev/null 2>&1
[ -f "$W/p24/prune.json" ] || "$R" prune --model "$M" --data "$W/data" --method wanda --pattern 2:4 --out "$W/p24" >/dev/null 2>&1
policies=("$@")
[ ${#policies[@]} -gt 0 ] || policies=("" "OMP_WAIT_POLICY=ACTIVE" "OMP_WAIT_POLICY=PASSIVE")
now() { date +%s.%N; }
run_one() {  # $1 env, $2 tag, $3.. command
  local envs=$1 tag=$2; shift 2
  env $envs "$@" >/dev/null 2>"$W/$tag.err"
}
for pol in "${policies[@]}"; do
  for cmd in repair eval; do
    if [ $cmd = repair ]; then
      args=(repair --dense "$M" --pruned "$W/p24" --data "$W/data" --steps 30 --limit 16)
      outf() { echo "--out $W/r_$1"; }
    else
      args=(eval --model "$W/p24" --data "$W/data" --limit 400)
      outf() { echo ""; }
    fi
    rm -rf "$W"/r_*
    t0=$(now); run_one "$pol" a "$R" "${args[@]}" $(outf a); t1=$(now)
    alone=$(echo "$t1 - $t0" | bc)
    rm -rf "$W"/r_*
    t0=$(now)
    ( s=$(now); run_one "$pol" b "$R" "${args[@]}" $(outf b); e=$(now); echo "$e - $s" | bc > "$W/tb" ) &
    ( s=$(now); run_one "$pol" c "$R" "${args[@]}" $(outf c); e=$(now); echo "$e - $s" | bc > "$W/tc" ) &
    wait
    b=$(cat "$W/tb"); c=$(cat "$W/tc")
    printf '%-28s %-6s alone %6.2f s  pair %6.2f / %6.2f s  ratio %.2f\n' "${pol:-default}" $cmd "$alone" "$b" "$c" \
      "$(echo "($b + $c) / 2 / $alone" | bc -l)"
  done
done
