// Shared by the tests that run the built `ressa` binary (RESSA_BINARY, set by CMake): run a
// command with stdout and stderr captured, look for the "error:" line, read JSON outputs.
#pragma once

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

#include "ressa/core/atomic_file.h"

namespace ressa::test {

struct CliResult {
  int rc = -1;             // exit status; -1 when the process did not exit normally
  bool signaled = false;   // killed by a signal (a crash)
  std::string out, err;    // captured stdout and stderr
};

// Runs a shell command line (in a subshell, so compound commands work) with stdout and stderr
// captured in dir/stdout.txt and dir/stderr.txt.
inline CliResult run_shell(const std::string& cmd, const std::filesystem::path& dir) {
  const std::string o = (dir / "stdout.txt").string(), e = (dir / "stderr.txt").string();
  const std::string full = "(" + cmd + ") >" + o + " 2>" + e;
  const int st = std::system(full.c_str());
  CliResult r;
  r.signaled = !WIFEXITED(st);
  r.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  r.out = read_file(o);
  r.err = read_file(e);
  return r;
}

// Runs `ressa <args>`, output captured in dir (see run_shell).
inline CliResult run_ressa(const std::string& args, const std::filesystem::path& dir) {
  return run_shell(std::string(RESSA_BINARY) + " " + args, dir);
}

// True when some line of `err` starts with "error:" (progress lines may come before it).
inline bool has_error_line(const std::string& err) {
  return err.rfind("error:", 0) == 0 || err.find("\nerror:") != std::string::npos;
}

inline nlohmann::json read_json(const std::filesystem::path& p) {
  return nlohmann::json::parse(read_file(p.string()));
}

}  // namespace ressa::test
