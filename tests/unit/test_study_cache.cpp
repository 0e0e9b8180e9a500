// Tests for the study cache (ressa/study/cache.h) through the runner with a fake ressa binary: an
// output is reused only by the ressa version that made it, unless --reuse-cache-from-older
// (reuse_older) allows another version's and the run summary lists it; remaking an input makes
// what was built from it stale; outputs without a finished record are not trusted; a checkpoint
// left by another version is not resumed.
#include "ressa/study/cache.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <regex>

#include "ressa/core/atomic_file.h"
#include "ressa/study/runner.h"
#include "study_fake_ressa.h"
#include "temp_dir.h"

using namespace ressa;
namespace fs = std::filesystem;

namespace {

// data -> prune -> eval, like one row of a study.
struct Chain {
  study::JobGraph g;
  std::string data, prune, eval;
  explicit Chain(const fs::path& cache) : g(cache.string()) {
    data = g.add("data", {"data", "--threads", "2"}, {}, "--out", "", 1, {});
    prune = g.add("prune", {"prune", "--model", g.out(data), "--threads", "2", "--json", "{out}.json"}, {data}, "--out",
                  "", 1, {}, true);
    eval = g.add("eval", {"eval", "--model", g.out(prune), "--threads", "2"}, {prune}, "--json", ".json", 1, {});
  }
};

study::RunSummary run(const Chain& c, const std::string& binary, const std::string& version, bool reuse_older = false) {
  study::RunOptions o;
  o.binary = binary;
  o.version = version;
  o.reuse_older = reuse_older;
  return study::run_jobs(c.g, o);
}

}  // namespace

TEST(StudyCache, AnOutputIsReusedOnlyByTheVersionThatMadeIt) {
  test::TempDir t;
  const std::string bin = test::write_fake_ressa(t.path);
  Chain c(t / "cache");
  auto s = run(c, bin, "1.0+aaa");
  EXPECT_EQ(s.ran, 3);
  EXPECT_TRUE(s.failed.empty());
  EXPECT_EQ(run(c, bin, "1.0+aaa").ran, 0);  // same version: all from the cache

  s = run(c, bin, "1.0+bbb");  // another build: everything again, into the same paths
  EXPECT_EQ(s.ran, 3);
  EXPECT_EQ(s.cached, 0);
  EXPECT_TRUE(s.reused_older.empty());
  EXPECT_EQ(test::fake_ressa_calls(t.path), 6);
  const auto rec = study::read_job_record(c.g.at(c.eval));
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->ressa_version, "1.0+bbb");
  EXPECT_TRUE(rec->finished);
  EXPECT_EQ(rec->threads, 2);
  EXPECT_TRUE(std::regex_match(rec->date, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << rec->date;
  EXPECT_FALSE(rec->cpu.empty());
}

TEST(StudyCache, ReuseOlderReusesAnotherVersionsOutputsAndListsThem) {
  test::TempDir t;
  const std::string bin = test::write_fake_ressa(t.path);
  Chain c(t / "cache");
  run(c, bin, "1.0+old");
  const auto s = run(c, bin, "1.0+new", /*reuse_older=*/true);
  EXPECT_EQ(s.ran, 0);
  EXPECT_EQ(s.cached, 3);
  EXPECT_EQ(s.version, "1.0+new");
  ASSERT_EQ(s.reused_older.size(), 3u);
  for (const auto& id : {c.data, c.prune, c.eval}) EXPECT_EQ(s.reused_older.at(id), "1.0+old") << id;
  EXPECT_EQ(study::read_job_record(c.g.at(c.eval))->ressa_version, "1.0+old");  // the record is not rewritten

  // The flag changes nothing where the outputs are the running version's own.
  run(c, bin, "1.0+new");
  EXPECT_TRUE(run(c, bin, "1.0+new", true).reused_older.empty());
}

TEST(StudyCache, RemakingAnInputMakesWhatWasBuiltFromItStale) {
  test::TempDir t;
  const std::string bin = test::write_fake_ressa(t.path);
  Chain c(t / "cache");
  run(c, bin, "v1");
  // The prune job is remade (here: its record says it finished at another time); the eval made
  // from the old pruned model must run again, though its own record names the running version.
  auto rec = *study::read_job_record(c.g.at(c.prune));
  rec.date = "2000-01-01T00:00:00Z";
  study::write_job_record(c.g.at(c.prune), rec);
  auto d = study::decide_cache(c.g, "v1", false);
  EXPECT_EQ(d.at(c.data).use, study::CacheUse::Reuse);
  EXPECT_EQ(d.at(c.prune).use, study::CacheUse::Reuse);
  EXPECT_EQ(d.at(c.eval).use, study::CacheUse::Run);

  // An input that runs again takes everything after it along, even with reuse_older.
  fs::remove(c.g.at(c.data).record);
  d = study::decide_cache(c.g, "v1", true);
  EXPECT_EQ(d.at(c.data).use, study::CacheUse::ReuseOlder);  // an output without a record: another ressa's
  fs::remove_all(c.g.out(c.data));
  d = study::decide_cache(c.g, "v1", true);
  for (const auto& id : {c.data, c.prune, c.eval}) EXPECT_EQ(d.at(id).use, study::CacheUse::Run) << id;
}

TEST(StudyCache, OutputsWithoutAFinishedRecordAreNotTrusted) {
  test::TempDir t;
  const std::string bin = test::write_fake_ressa(t.path);
  Chain c(t / "cache");
  run(c, bin, "v1");
  fs::remove(c.g.at(c.eval).record);  // a cache written before records existed
  auto d = study::decide_cache(c.g, "v1", false);
  EXPECT_EQ(d.at(c.eval).use, study::CacheUse::Run);
  d = study::decide_cache(c.g, "v1", true);
  EXPECT_EQ(d.at(c.eval).use, study::CacheUse::ReuseOlder);
  EXPECT_EQ(d.at(c.eval).version, "unknown");

  auto rec = *study::read_job_record(c.g.at(c.prune));  // left by a crash or a failed rerun
  rec.finished = false;
  study::write_job_record(c.g.at(c.prune), rec);
  d = study::decide_cache(c.g, "v1", true);
  EXPECT_EQ(d.at(c.prune).use, study::CacheUse::Run);
  EXPECT_EQ(d.at(c.eval).use, study::CacheUse::Run);

  write_file_atomic(c.g.at(c.data).record, "{ not json");  // a damaged record is no record
  EXPECT_EQ(study::decide_cache(c.g, "v1", false).at(c.data).use, study::CacheUse::Run);

  const auto s = run(c, bin, "v1");  // the rerun removes the stale outputs first and rewrites them
  EXPECT_EQ(s.ran, 3);
  EXPECT_TRUE(study::read_job_record(c.g.at(c.data))->finished);
}

TEST(StudyCache, ACheckpointIsResumedOnlyByTheVersionThatStartedIt) {
  test::TempDir t;
  const std::string bin = test::write_fake_ressa(t.path);
  Chain c(t / "cache");
  run(c, bin, "v1");
  const study::Job& p = c.g.at(c.prune);
  auto interrupted = [&](const std::string& version) {  // a run of `version` killed mid-training
    fs::remove_all(p.out);
    fs::create_directories(p.resume_dir);
    auto rec = *study::read_job_record(p);
    rec.ressa_version = version;
    rec.finished = false;
    study::write_job_record(p, rec);
  };
  interrupted("v1");
  run(c, bin, "v1");
  EXPECT_TRUE(fs::exists(p.resume_dir));  // kept (and passed as --resume); the fake leaves it
  interrupted("v0");
  run(c, bin, "v1");
  EXPECT_FALSE(fs::exists(p.resume_dir));
}

TEST(StudyCache, RecordRoundTripsAndRejectsMissingFields) {
  study::JobRecord r;
  r.id = "eval-0123456789abcdef";
  r.kind = "eval";
  r.ressa_version = "0.5.0+da789e6a1b2c-dirty";
  r.cpu = "AMD EPYC";
  r.threads = 4;
  r.date = "2026-11-28T19:10:05Z";
  r.finished = true;
  r.inputs["prune-1"] = {{"ressa_version", "0.5.0+x"}, {"date", "2026-11-28T19:00:00Z"}};
  r.inputs["dense-2"] = nullptr;
  const auto back = study::job_record_from_json(study::to_json(r));
  EXPECT_EQ(study::to_json(back), study::to_json(r));
  auto j = study::to_json(r);
  j.erase("ressa_version");
  EXPECT_THROW(study::job_record_from_json(j), std::runtime_error);
}
