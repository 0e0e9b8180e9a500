#!/usr/bin/env bash
# Sets up, builds and runs ressa's test suite (CTest: unit, model, pruning, repair, CLI), then the
# reliability checks: the torch-free unit tests under ASan+UBSan (scripts/sanitize.sh) and a
# short libFuzzer run of every parser harness (scripts/fuzz.sh, FUZZ_SECONDS each, default 20,
# fixed seed FUZZ_SEED default 1 so a failure is reproducible; long random-seed campaigns are
# run by hand, see docs/reliability.md).
# Any failing step fails the script (set -e). RESSA_SKIP_RELIABILITY=1 runs only the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
(cd build && ctest --output-on-failure -j"$(nproc)" --timeout 900)
if [ "${RESSA_SKIP_RELIABILITY:-0}" != 1 ]; then
  echo "== sanitizers (ASan+UBSan, torch-free tests) =="
  bash scripts/sanitize.sh
  echo "== fuzzing (${FUZZ_SECONDS:-20} s per harness) =="
  FUZZ_SEED=${FUZZ_SEED:-1} bash scripts/fuzz.sh "${FUZZ_SECONDS:-20}"
fi
