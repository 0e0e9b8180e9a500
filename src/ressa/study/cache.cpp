// Job records and the cache reuse rule (see cache.h).
#include "ressa/study/cache.h"

#include <ctime>
#include <filesystem>
#include <fstream>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ressa::study {

json to_json(const JobRecord& r) {
  json inputs = json::object();
  for (const auto& [id, stamp] : r.inputs) inputs[id] = stamp;
  return {{"id", r.id},
          {"kind", r.kind},
          {"ressa_version", r.ressa_version},
          {"cpu", r.cpu},
          {"threads", r.threads > 0 ? json(r.threads) : json(nullptr)},
          {"date", r.date},
          {"finished", r.finished},
          {"inputs", inputs}};
}

JobRecord job_record_from_json(const json& j) {
  auto str = [&](const char* key) {
    RESSA_CHECK(j.is_object() && j.contains(key) && j[key].is_string(), "[JobRecord] field '", key,
                "' missing or not a string in ", j.dump());
    return j[key].get<std::string>();
  };
  JobRecord r;
  r.id = str("id");
  r.kind = str("kind");
  r.ressa_version = str("ressa_version");
  r.cpu = str("cpu");
  r.date = str("date");
  RESSA_CHECK(j.contains("finished") && j["finished"].is_boolean(), "[JobRecord] field 'finished' missing or not a bool");
  r.finished = j["finished"].get<bool>();
  if (j.contains("threads") && j["threads"].is_number_integer()) r.threads = j["threads"].get<int>();
  RESSA_CHECK(j.contains("inputs") && j["inputs"].is_object(), "[JobRecord] field 'inputs' missing or not an object");
  for (const auto& [id, stamp] : j["inputs"].items()) r.inputs[id] = stamp;
  return r;
}

std::optional<JobRecord> read_job_record(const Job& job) {
  if (job.record.empty()) return std::nullopt;
  std::ifstream in(job.record);
  if (!in) return std::nullopt;
  try {
    return job_record_from_json(json::parse(in));
  } catch (const std::exception&) {
    return std::nullopt;  // a damaged record is no record: the output is not trusted as current
  }
}

void write_job_record(const Job& job, const JobRecord& record) {
  RESSA_CHECK_ARG(!job.record.empty(), "[write_job_record] job ", job.id, " has no record path (a pre-existing artifact)");
  fs::create_directories(fs::path(job.record).parent_path());  // the first job of a fresh cache
  write_file_atomic(job.record, to_json(record).dump(2) + "\n");
}

json input_stamp(const Job& job) {
  const auto r = read_job_record(job);
  if (!r || !r->finished) return nullptr;
  return {{"ressa_version", r->ressa_version}, {"date", r->date}};
}

std::string utc_now_iso8601() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

namespace {
// The value of the job's --threads argument; 0 when it has none.
int threads_argument(const Job& job) {
  for (size_t i = 0; i + 1 < job.args.size(); ++i)
    if (job.args[i] == "--threads") {
      try {
        return std::stoi(job.args[i + 1]);
      } catch (const std::exception&) {
        return 0;
      }
    }
  return 0;
}
}  // namespace

JobRecord new_job_record(const JobGraph& graph, const Job& job, const std::string& version, const std::string& cpu) {
  JobRecord r;
  r.id = job.id;
  r.kind = job.kind;
  r.ressa_version = version;
  r.cpu = cpu;
  r.threads = threads_argument(job);
  r.date = utc_now_iso8601();
  for (const auto& d : job.deps) r.inputs[d] = input_stamp(graph.at(d));
  return r;
}

std::map<std::string, CacheDecision> decide_cache(const JobGraph& graph, const std::string& version, bool reuse_older) {
  std::map<std::string, CacheDecision> out;
  for (const auto& id : graph.order()) {
    const Job& j = graph.at(id);
    CacheDecision& d = out[id];
    if (j.record.empty()) {  // a pre-existing artifact: its id covers its content (jobs.h)
      d.use = CacheUse::Reuse;
      continue;
    }
    bool inputs_kept = true;
    for (const auto& dep : j.deps) inputs_kept &= out.at(dep).use != CacheUse::Run;
    if (!inputs_kept || !fs::exists(j.out)) continue;  // Run
    const auto rec = read_job_record(j);
    if (!rec) {  // an output without a record: made by a ressa that kept none
      if (reuse_older) d = {CacheUse::ReuseOlder, "unknown"};
      continue;
    }
    if (!rec->finished) continue;  // the output is left from before a crash or a failed rerun
    bool same_inputs = true;
    for (const auto& dep : j.deps) {
      auto it = rec->inputs.find(dep);
      same_inputs &= it != rec->inputs.end() && it->second == input_stamp(graph.at(dep));
    }
    if (!same_inputs) continue;
    if (rec->ressa_version == version) d.use = CacheUse::Reuse;
    else if (reuse_older) d = {CacheUse::ReuseOlder, rec->ressa_version};
  }
  return out;
}

void remove_job_outputs(const Job& job, bool keep_checkpoint) {
  RESSA_CHECK_ARG(!job.record.empty(), "[remove_job_outputs] job ", job.id, " is a pre-existing artifact; not removing ",
                  job.out);
  std::error_code ec;
  fs::remove_all(job.out, ec);
  for (const auto& f : job.extra_outputs) fs::remove_all(f, ec);
  fs::remove(job.record, ec);
  if (!keep_checkpoint && !job.resume_dir.empty()) fs::remove_all(job.resume_dir, ec);
}

}  // namespace ressa::study
