// Helpers shared by the `ressa bench` subcommands (cmd_bench.cpp: gemv, cmd_bench_decode.cpp:
// decode): robust statistics and what the machine is doing and holds.
#pragma once
#include <CLI/CLI.hpp>

#include <chrono>
#include <cstdint>
#include <vector>

namespace ressa::cli {

double median(std::vector<double> v);
// The q-quantile (0 <= q <= 1) of v, nearest rank.
double quantile(std::vector<double> v, double q);
// Milliseconds per call of fn, over `calls` calls made back to back.
template <typename F>
double time_ms(F&& fn, int64_t calls) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < calls; ++i) fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / double(calls);
}

// The 1-minute load average (other jobs on the machine distort timings).
double load_average();
// Bytes of the last-level cache (sysfs, then sysconf; 32 MiB when neither knows).
double last_level_cache_bytes();
// MemAvailable from /proc/meminfo (free memory plus what the page cache would give back); the
// free pages from sysconf where /proc is missing.
double available_memory_bytes();

// `ressa bench decode` (cmd_bench_decode.cpp).
void register_bench_decode(CLI::App* bench);

}  // namespace ressa::cli
