#!/usr/bin/env bash
# Installs ressa's Debian 12 dependencies (root or sudo) and builds it into build/:
#   bash scripts/setup.sh            everything (library, CLI, tests, benchmarks)
#   bash scripts/setup.sh ressa      only the CLI
# Used by the README's two commands and by CI. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake libtorch-dev libopenblas0 nlohmann-json3-dev libcli11-dev libstb-dev
      libgtest-dev libbenchmark-dev libgloo-dev gnuplot-nox python3-torch zlib1g-dev libjpeg-dev libyaml-cpp-dev dataset-fashion-mnist
      clang libclang-rt-14-dev)  # clang + libFuzzer: scripts/fuzz.sh
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# RESSA_WERROR=ON (CI) makes every compiler warning an error.
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DRESSA_WERROR="${RESSA_WERROR:-OFF}" >/dev/null
# With arguments, only those targets (the quickstart needs only `ressa`); else everything.
if [ $# -gt 0 ]; then
  for t in "$@"; do cmake --build build -j"$(nproc)" --target "$t"; done
else
  cmake --build build -j"$(nproc)"
fi
