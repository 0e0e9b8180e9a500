// The study job graph: every artifact of `ressa reproduce` (dataset, dense model, pruned model,
// repaired model, evaluation) is one Job, a `ressa <subcommand> ...` command line whose output
// path is named by a hash of its full configuration (the command line and its inputs' ids).
// A job whose output exists and was made by this ressa (cache.h) is done, so an interrupted
// study resumes where it stopped and a changed setting makes a new artifact instead of reusing a
// stale one. Torch-free.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ressa::study {

struct Job {
  std::string id;                 // "<kind>-<16 hex>": the cache key
  std::string kind;               // data | train | prune | repair | eval
  std::vector<std::string> args;  // arguments after the binary (subcommand first)
  std::vector<std::string> deps;  // ids that must be done first
  std::string out;                // output path (directory or JSON file)
  std::vector<std::string> extra_outputs;  // other files it writes ("{out}" arguments, e.g. <out>.json)
  std::string record;             // <cache>/<id>.job.json: who made the output (cache.h); "" for existing artifacts
  std::string resume_dir;         // when this exists at start, append --resume (train/repair checkpoints)
  double cost_s = 1;              // estimated seconds at one thread (progress ETA)
  nlohmann::json config;          // the settings that matter to a reader of results.json
};

// Collects jobs, deduplicating by id (two studies asking for the same artifact share it).
class JobGraph {
 public:
  explicit JobGraph(std::string cache_dir) : cache_(std::move(cache_dir)) {}

  // Adds a job built from `kind`, `args` (without the output flag) and `deps`; the output path
  // is <cache>/<id> (+ `out_suffix`) passed as `out_flag`; "{out}" inside an argument is
  // replaced by that path (after hashing). Returns the id.
  std::string add(const std::string& kind, std::vector<std::string> args, const std::vector<std::string>& deps,
                  const std::string& out_flag, const std::string& out_suffix, double cost_s, nlohmann::json config,
                  bool resumable = false);
  // Adds a pre-existing artifact (e.g. a shipped model directory) as a done job. Its id (and so
  // the cache keys of every job that uses it) covers the name, size and content hash of each file
  // in it but its *.md documentation: replacing a shipped model re-runs what depends on it instead
  // of reusing stale results, while editing its README or a fresh clone's new timestamps do not.
  std::string add_existing(const std::string& kind, const std::string& path, nlohmann::json config);

  const Job& at(const std::string& id) const;
  const std::string& out(const std::string& id) const { return at(id).out; }
  const std::vector<std::string>& order() const { return order_; }  // insertion = a valid topological order
  const std::string& cache_dir() const { return cache_; }

 private:
  std::string cache_;
  std::map<std::string, Job> jobs_;
  std::vector<std::string> order_;
};

// FNV-1a 64 of the strings (with separators), as 16 hex digits.
std::string hash_strings(const std::vector<std::string>& parts);

}  // namespace ressa::study
