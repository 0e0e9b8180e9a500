// Which ressa made each cached job output, and which cached outputs a study may reuse.
//
// A job's path in the cache (its id, jobs.h) is the hash of its configuration: the command line
// and the ids of its inputs. The ressa that ran it is recorded beside the output, in
// <cache>/<id>.job.json (JobRecord), written by the runner when the job starts and completed when
// it succeeds. The cache key is the pair (id, ressa version): an output is reused only when its
// record is complete, names the running ressa's version_string() (core/version.h, which changes
// with every commit and with a dirty tree), and each input it was made from is still the one in
// the cache (same version and date in the input's record). Anything else runs again, into the same
// path, after its stale output, record and any checkpoint made by another ressa are removed.
//
// The version is kept out of the path, and checked from the record instead, for two reasons:
// `--reuse-cache-from-older` can find the outputs of other builds at the path the graph already
// names (it reuses an output whose record names another version, or that has no record at all,
// and the run summary lists each one with its version so the report says so); and a rebuild
// replaces artifacts instead of adding a copy of the whole cache per version. The input check
// makes a rerun propagate: when an input is remade, every output made from its old copy is stale,
// even one made by the running ressa. Torch-free.
#pragma once
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ressa/study/jobs.h"

namespace ressa::study {

struct JobRecord {
  std::string id, kind;
  std::string ressa_version;  // version_string() of the ressa that ran the job
  std::string cpu;            // CPU model name of the machine (cpu_info.h)
  int threads = 0;            // the job's --threads (0 = not given)
  std::string date;           // UTC ISO 8601: when it finished (started, while not finished)
  bool finished = false;      // false while running, or after a crash or failure
  // dep id -> input_stamp() of the input this output was made from (null: a pre-existing artifact)
  std::map<std::string, nlohmann::json> inputs;
};

nlohmann::json to_json(const JobRecord& r);
// Throws std::runtime_error "[JobRecord] ..." when a field is missing or has the wrong type.
JobRecord job_record_from_json(const nlohmann::json& j);

// The job's record, or nullopt when it has none (a pre-existing artifact, a job that never ran,
// a cache written without records) or the file is unreadable.
std::optional<JobRecord> read_job_record(const Job& job);
// Writes the record atomically. Throws std::invalid_argument for a job without a record path.
void write_job_record(const Job& job, const JobRecord& record);

// What identifies the output of `job` as it is in the cache now: {"ressa_version", "date"} of its
// finished record; null for a pre-existing artifact or an output without a record.
nlohmann::json input_stamp(const Job& job);

// The record of `job` about to run now: version, cpu, threads from its --threads argument, the
// current UTC date, and the input stamps of its dependencies in `graph`.
JobRecord new_job_record(const JobGraph& graph, const Job& job, const std::string& version, const std::string& cpu);

// The current time as UTC ISO 8601, e.g. "2026-11-28T19:10:05Z".
std::string utc_now_iso8601();

enum class CacheUse { Run, Reuse, ReuseOlder };
struct CacheDecision {
  CacheUse use = CacheUse::Run;
  std::string version;  // ReuseOlder: the version in the reused output's record ("unknown" without one)
};

// The decision for every job of `graph`, made in its (topological) order as the header comment
// describes: Reuse for a current output, ReuseOlder for another ressa's output when `reuse_older`,
// Run otherwise (and for every job that depends on one that runs). Pre-existing artifacts
// (JobGraph::add_existing) are always reused.
std::map<std::string, CacheDecision> decide_cache(const JobGraph& graph, const std::string& version, bool reuse_older);

// Removes what a previous run of `job` left: its output, its extra outputs, its record, and its
// checkpoint unless `keep_checkpoint`. Missing files are fine.
void remove_job_outputs(const Job& job, bool keep_checkpoint);

}  // namespace ressa::study
