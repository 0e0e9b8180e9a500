// Progress reporting for long work: counts steps, measures rate and ETA, and hands formatted
// lines to a sink the caller provides (the CLI prints a bar on a terminal, periodic plain
// lines otherwise). The library itself never prints.
#pragma once
#include <chrono>
#include <functional>
#include <string>

namespace ressa {

// Receives a progress line; `final` is true for the last one of a task.
using ProgressSink = std::function<void(const std::string& line, bool final)>;

class Progress {
 public:
  Progress(std::string label, int64_t total, ProgressSink sink, double min_interval_s = 0.5);
  // Advances to `done` (absolute) and reports if enough time passed; `extra` is appended
  // (e.g. "loss 0.123").
  void update(int64_t done, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed_s() const;

 private:
  std::string format(int64_t done, const std::string& extra) const;
  std::string label_;
  int64_t total_;
  ProgressSink sink_;
  double min_interval_s_;
  int64_t start_done_ = -1;
  std::chrono::steady_clock::time_point start_, last_report_;
};

// "1h02m", "3m05s", "12s"
std::string format_duration(double seconds);

}  // namespace ressa
