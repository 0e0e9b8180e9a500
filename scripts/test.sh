#!/usr/bin/env bash
# Sets up, builds and runs ressa's test suite (CTest: unit, model, pruning, repair, CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cd build
ctest --output-on-failure -j"$(nproc)" --timeout 900
