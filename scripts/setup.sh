#!/usr/bin/env bash
# Installs ressa's Debian 12 dependencies (root or sudo) and builds it into build/.
# Used by the README's two commands and by CI. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PKGS=(build-essential cmake libtorch-dev libopenblas0 nlohmann-json3-dev libcli11-dev libstb-dev
      libgtest-dev libbenchmark-dev libgloo-dev gnuplot-nox python3-torch zlib1g-dev libjpeg-dev dataset-fashion-mnist
      clang libclang-rt-14-dev)  # clang + libFuzzer: scripts/fuzz.sh
missing=()
for p in "${PKGS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build build -j"$(nproc)"
