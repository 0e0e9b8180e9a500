// Progress lines with rate and ETA (see progress.h).
#include "ressa/core/progress.h"

#include <cstdio>

namespace ressa {

Progress::Progress(std::string label, int64_t total, ProgressSink sink, double min_interval_s)
    : label_(std::move(label)), total_(total), sink_(std::move(sink)), min_interval_s_(min_interval_s) {
  start_ = last_report_ = std::chrono::steady_clock::now();
}

double Progress::elapsed_s() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

std::string format_duration(double s) {
  char buf[32];
  if (s < 0) s = 0;
  const long t = static_cast<long>(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t % 3600) / 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

std::string Progress::format(int64_t done, const std::string& extra) const {
  const double el = elapsed_s();
  const int64_t since = done - (start_done_ < 0 ? 0 : start_done_);
  const double rate = el > 0 ? since / el : 0.0;
  char buf[256];
  const double pct = total_ > 0 ? 100.0 * done / total_ : 0.0;
  std::string eta = rate > 0 && total_ > 0 ? format_duration((total_ - done) / rate) : "?";
  std::snprintf(buf, sizeof buf, "%s %lld/%lld (%.0f%%) %.2f/s elapsed %s eta %s", label_.c_str(),
                static_cast<long long>(done), static_cast<long long>(total_), pct, rate, format_duration(el).c_str(),
                eta.c_str());
  std::string s = buf;
  if (!extra.empty()) s += " " + extra;
  return s;
}

void Progress::update(int64_t done, const std::string& extra) {
  if (start_done_ < 0) start_done_ = done > 0 ? done - 1 : 0;  // resumed runs measure the rate from here
  if (!sink_) return;
  auto now = std::chrono::steady_clock::now();
  if (std::chrono::duration<double>(now - last_report_).count() < min_interval_s_ && done < total_) return;
  last_report_ = now;
  sink_(format(done, extra), false);
}

void Progress::finish(const std::string& extra) {
  if (sink_) sink_(format(total_, extra), true);
}

}  // namespace ressa
