// A stand-in for the ressa binary in the study tests: a shell script that writes the outputs a
// study reads back (a directory for --out, fixed metrics for --json) without any model, so the
// runner, the cache and the report can be tested without torch. Every call appends its
// subcommand to <dir>/calls.txt.
#pragma once
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace ressa::test {

// Writes the script to dir/fake-ressa and returns its path.
inline std::string write_fake_ressa(const std::filesystem::path& dir) {
  const std::filesystem::path p = dir / "fake-ressa";
  std::ofstream(p) << R"(#!/bin/sh
cmd=$1; shift
echo "$cmd" >> ")" << (dir / "calls.txt").string() << R"("
out=""; json=""
while [ $# -gt 0 ]; do
  case "$1" in --out) out=$2; shift;; --json) json=$2; shift;; esac
  shift
done
case "$cmd" in
  eval) printf '{"accuracy": 0.5, "n": 10, "families": {}, "sparsity": {"overall": 0.5, "vision": 0.5, "language": 0.5}}' > "$json";;
  *) mkdir -p "$out"; if [ -n "$json" ]; then printf '{"seconds": 1, "steps": 3}' > "$json"; fi;;
esac
)";
  ::chmod(p.c_str(), 0755);
  return p.string();
}

// Number of lines in dir/calls.txt: how many jobs the fake ressa has run.
inline int fake_ressa_calls(const std::filesystem::path& dir) {
  std::ifstream in(dir / "calls.txt");
  int n = 0;
  for (std::string line; std::getline(in, line);) ++n;
  return n;
}

}  // namespace ressa::test
