// Runs a JobGraph: up to `jobs` child processes of the ressa binary at a time, each with its
// own log file, in dependency order; jobs whose cached output may be reused (cache.h) are
// skipped, and each job that runs leaves a record of the ressa, CPU, threads and date that made
// its output. One
// progress line for the whole study (jobs done, running, ETA from the cost estimates scaled by
// the measured rate). A failed job fails its dependents; the others still run. Torch-free.
#pragma once
#include <map>
#include <string>

#include "ressa/core/progress.h"
#include "ressa/core/version.h"
#include "ressa/study/jobs.h"

namespace ressa::study {

struct RunOptions {
  std::string binary;  // path of the ressa executable (children run `binary <args>`)
  int jobs = 1;        // concurrent child processes
  ProgressSink progress;
  std::string version = version_string();  // the children's ressa version (the binary is this ressa)
  bool reuse_older = false;                // reuse outputs made by another ressa version (cache.h)
};

struct RunSummary {
  int total = 0, cached = 0, ran = 0;          // cached counts reused_older too
  std::string version;                         // RunOptions::version
  std::map<std::string, std::string> reused_older;  // id -> version that made its reused output ("unknown": no record)
  std::map<std::string, std::string> failed;   // id -> reason (the log's last error line)
  double seconds = 0;
};

RunSummary run_jobs(const JobGraph& graph, const RunOptions& opts);

// Log file of a job: <out>.log
std::string job_log_path(const Job& j);

}  // namespace ressa::study
