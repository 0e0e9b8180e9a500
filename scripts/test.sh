#!/usr/bin/env bash
# Sets up, builds and runs ressa's test suite (CTest: unit, model, pruning, repair, CLI), then the
# reliability checks: the torch-free unit tests under ASan+UBSan (scripts/sanitize.sh) and a
# short libFuzzer run of every parser harness (scripts/fuzz.sh: FUZZ_RUNS executions each, default
# 100,000, capped at FUZZ_SECONDS, default 30; fixed seed FUZZ_SEED, default 1, so the same inputs
# are tried on every machine and a failure is reproducible; long random-seed campaigns are
# run by hand, see docs/reliability.md).
# Any failing step fails the script (set -e). RESSA_SKIP_RELIABILITY=1 runs only the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 900)
if [ "${RESSA_SKIP_RELIABILITY:-0}" != 1 ]; then
  echo "== sanitizers (ASan+UBSan, torch-free tests) =="
  bash scripts/sanitize.sh
  echo "== fuzzing (${FUZZ_RUNS:-100000} executions or ${FUZZ_SECONDS:-30} s per harness, seed ${FUZZ_SEED:-1}) =="
  FUZZ_SEED=${FUZZ_SEED:-1} FUZZ_RUNS=${FUZZ_RUNS:-100000} bash scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
fi
