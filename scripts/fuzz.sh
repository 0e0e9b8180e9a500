#!/usr/bin/env bash
# Builds the libFuzzer harnesses (tests/fuzz, torch-free, ASan+UBSan) into build-fuzz/ with
# clang and runs each for a bounded time. Usage:
#   scripts/fuzz.sh [SECONDS_PER_HARNESS=60] [HARNESS...]     e.g. scripts/fuzz.sh 30 config idx
# Harness names: the <name> of tests/fuzz/fuzz_<name>.cpp (default: all of them).
# FUZZ_RUNS=N stops each harness after N executions instead (SECONDS still caps the time).
# FUZZ_SEED=N fixes libFuzzer's random seed (scripts/test.sh, i.e. CI, uses seed 1 and 100,000
# runs): a run from the same corpus then mostly tries the same inputs, though not bit for bit
# (two seed-1 runs of `image` kept 531 and 550 corpus files). Unset: a new random seed per run,
# for bug hunting. A failing input of up to 8 KB is also printed in base64, so that one found by
# CI can be recovered from its log.
# Each run starts from the committed seeds (tests/fuzz/corpus/<name>/) plus what earlier runs in
# this build dir found (build-fuzz/corpus/<name>/, never committed automatically). A crash, leak,
# sanitizer report or an input slower than 10 s fails the script (exit 1); the input is saved
# under build-fuzz/artifacts/<name>/. Fix the parser, then keep the input as a regression file
# in tests/fuzz/regressions/<name>/ (replayed by tests/unit/test_fuzz_regressions.cpp).
# Prints one summary line per harness: name, executions, exec/s, corpus size.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER=${1:-60}
shift || true
CXX_BIN=${CXX_FUZZ:-clang++}
BUILD=build-fuzz
JOBS=${JOBS:-$(nproc)}

if ! command -v "$CXX_BIN" >/dev/null; then
  echo "error: $CXX_BIN not found (install clang: apt-get install clang)" >&2
  exit 1
fi

cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$CXX_BIN" \
  -DRESSA_FUZZ=ON -DRESSA_WITH_TORCH=OFF -DRESSA_BUILD_TESTS=OFF -DRESSA_BUILD_BENCH=OFF >/dev/null

if [ $# -gt 0 ]; then
  NAMES=("$@")
else
  NAMES=()
  for f in tests/fuzz/fuzz_*.cpp; do n=$(basename "$f" .cpp); NAMES+=("${n#fuzz_}"); done
fi
TARGETS=()
for n in "${NAMES[@]}"; do TARGETS+=("fuzz_$n"); done
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
status=0
summary=()
for n in "${NAMES[@]}"; do
  work="$BUILD/corpus/$n" art="$BUILD/artifacts/$n" log="$BUILD/logs/fuzz_$n.log"
  mkdir -p "$work" "$art" "$(dirname "$log")"
  echo "fuzz_$n: ${SECONDS_PER}s (log $log)"
  rc=0
  # -timeout: an input running > 10 s is a hang; -rss_limit_mb: a blow-up is a bug too.
  runs_flag=()
  [ -n "${FUZZ_RUNS:-}" ] && runs_flag=(-runs="$FUZZ_RUNS")
  [ -n "${FUZZ_SEED:-}" ] && runs_flag+=(-seed="$FUZZ_SEED")
  "$BUILD/fuzz_$n" "$work" "tests/fuzz/corpus/$n" -max_total_time="$SECONDS_PER" "${runs_flag[@]}" -timeout=10 \
    -rss_limit_mb=2560 -print_final_stats=1 -artifact_prefix="$art/" >"$log" 2>&1 || rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  corp=$(ls "$work" | wc -l)
  if [ "$rc" -ne 0 ]; then
    status=1
    summary+=("fuzz_$n FAILED (exit $rc) after ${runs:-?} executions; input in $art/; see $log")
    grep -E "ERROR|runtime error|SUMMARY|terminate|what\(\)" "$log" | head -5 >&2 || true
    # The input, printed so it can be recovered from a CI log (base64 -d > file to replay it).
    for f in "$art"/*; do
      [ -f "$f" ] && [ "$(stat -c %s "$f")" -le 8192 ] && echo "input $f (base64): $(base64 -w0 "$f")" >&2
    done
  else
    summary+=("fuzz_$n ok: ${runs:-?} executions, ${rate:-?} exec/s, corpus $corp files")
  fi
done
printf '%s\n' "${summary[@]}"
exit $status
