// Tests for the study report (ressa/study/report.h): a quick study run with a fake ressa binary
// gives results.json entries that carry the ressa version, CPU, threads and date of the run that
// made each number, paths relative to the study folder, and a report that says when jobs were
// reused from another ressa version; and the shipped docs/results/quick/results.json renders
// again without its cache. Set RESSA_TEST_REPORT_DIR to a folder to keep that rendering (report.md
// and plots/*.png) for viewing.
#include "ressa/study/report.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>

#include "ressa/core/atomic_file.h"
#include "ressa/core/cpu_info.h"
#include "study_fake_ressa.h"
#include "temp_dir.h"

using namespace ressa;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

// A quick ShapesVQA study on a shipped dense model (t/models/shapes-small) into t/study.
struct QuickStudy {
  fs::path out;
  std::string bin;
  study::StudyOptions o;
  study::Study s;
  explicit QuickStudy(const test::TempDir& t) : out(t / "study"), bin(test::write_fake_ressa(t.path)), s("") {
    fs::create_directories(t / "models" / "shapes-small");
    write_file_atomic((t / "models" / "shapes-small" / "model.safetensors").string(), "weights");
    o.quick = true;
    o.threads = 3;
    o.dense_dirs_root = (t / "models").string();
    s = study::plan_study(o, (out / "cache").string());
  }
  study::ReportInfo run(const std::string& version, bool reuse_older = false) {
    study::RunOptions ro;
    ro.binary = bin;
    ro.jobs = 2;
    ro.version = version;
    ro.reuse_older = reuse_older;
    study::ReportInfo info;
    info.options = o;
    info.run = study::run_jobs(s.graph, ro);
    info.command = "ressa reproduce --out " + out.string() + " --quick";
    study::write_report(s, info, out.string());
    return info;
  }
  json results() const { return json::parse(read_file((out / "results.json").string())); }
  std::string report() const { return read_file((out / "report.md").string()); }
};

const std::regex iso8601(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)");

void expect_run_fields(const json& e, const std::string& version, const std::string& what) {
  EXPECT_EQ(e.value("ressa_version", ""), version) << what << ": " << e.dump();
  EXPECT_EQ(e.value("cpu", ""), cpu_model_name()) << what;
  EXPECT_EQ(e.value("threads", 0), 3) << what;
  EXPECT_TRUE(std::regex_match(e.value("date", ""), iso8601)) << what << ": " << e.dump();
}

}  // namespace

TEST(StudyReport, EveryNumberCarriesTheRunThatMadeIt) {
  test::TempDir t;
  QuickStudy q(t);
  const auto info = q.run("9.9.9+test");
  ASSERT_TRUE(info.run.failed.empty()) << info.run.failed.begin()->second;
  const json r = q.results();
  EXPECT_EQ(r["ressa_version"], "9.9.9+test");
  EXPECT_TRUE(std::regex_match(r["generated"].get<std::string>(), iso8601));
  ASSERT_FALSE(r["rows"].empty());
  int prunes = 0, repairs = 0;
  for (const auto& row : r["rows"]) {
    EXPECT_EQ(row["accuracy"], 0.5);
    expect_run_fields(row, "9.9.9+test", "row " + row["eval_job"].get<std::string>());
    if (row.contains("prune")) expect_run_fields(row["prune"], "9.9.9+test", "prune"), ++prunes;
    if (row.contains("repair")) expect_run_fields(row["repair"], "9.9.9+test", "repair"), ++repairs;
  }
  EXPECT_GT(prunes, 0);
  EXPECT_GT(repairs, 0);
  expect_run_fields(r["tasks"]["shapes"], "9.9.9+test", "dense eval");
  for (auto& [id, j] : r["jobs"].items()) {
    if (j.value("existing", false)) continue;
    expect_run_fields(j, "9.9.9+test", id);
    EXPECT_FALSE(j.contains("reused_from_older")) << id;
  }
  EXPECT_NE(q.report().find("| 9.9.9+test | " + cpu_model_name() + " | 3 |"), std::string::npos) << q.report();
}

TEST(StudyReport, PathsAreRelativeToTheStudyFolder) {
  test::TempDir t;
  QuickStudy q(t);
  q.run("v1");
  const json r = q.results();
  const std::string root = t.str();
  EXPECT_EQ(r["tasks"]["shapes"]["dense_dir"], "../models/shapes-small");
  EXPECT_EQ(r["tasks"]["shapes"]["dense"]["path"], "../models/shapes-small");
  for (const auto& row : r["rows"])
    if (row.contains("model_dir")) {
      const std::string d = row["model_dir"];
      EXPECT_EQ(d.rfind("cache/", 0), 0u) << d;
      EXPECT_TRUE(fs::is_directory(q.out / d)) << d;
    }
  for (const auto& p : r["plots"]) EXPECT_EQ(p.get<std::string>().rfind("plots/", 0), 0u) << p;
  const std::string md = q.report();
  EXPECT_NE(md.find("`../models/shapes-small`"), std::string::npos);
  EXPECT_EQ(md.find(root), std::string::npos) << "report.md names " << root;
  for (const auto& e : fs::directory_iterator(q.out / "plots"))
    if (e.path().extension() == ".gp") {
      EXPECT_EQ(read_file(e.path().string()).find(root), std::string::npos) << e.path();
    }

  // A failed job's log is named relative to the study folder too.
  fs::remove(q.s.graph.out(r["rows"][0]["eval_job"].get<std::string>()));
  std::ofstream(q.bin) << "#!/bin/sh\necho 'error: broken' >&2\nexit 1\n";  // keeps its mode
  const auto info = q.run("v1");
  ASSERT_EQ(info.run.failed.size(), 1u);
  const json failed = q.results()["failed"];
  const std::string why = failed.begin().value();
  EXPECT_NE(why.find("error: broken (log cache/eval-"), std::string::npos) << why;
  EXPECT_EQ(q.report().find(root), std::string::npos);
}

TEST(StudyReport, SaysPlainlyWhichJobsCameFromAnotherVersion) {
  test::TempDir t;
  QuickStudy q(t);
  q.run("1.0+old");
  EXPECT_EQ(q.report().find("Reused from another ressa version"), std::string::npos);
  const auto info = q.run("1.0+new", /*reuse_older=*/true);
  EXPECT_EQ(info.run.ran, 0);
  const size_t n = info.run.reused_older.size();
  EXPECT_EQ(n, q.s.graph.order().size() - 1);  // all but the shipped model
  const json r = q.results();
  EXPECT_EQ(r["ressa_version"], "1.0+new");
  EXPECT_EQ(r["run"]["reused_older"].size(), n);
  for (const auto& row : r["rows"]) EXPECT_EQ(row["ressa_version"], "1.0+old");
  const std::string md = q.report();
  EXPECT_NE(md.find("**Reused from another ressa version.** " + std::to_string(n) + " of the jobs"), std::string::npos)
      << md;
  EXPECT_NE(md.find("ressa 1.0+old (" + std::to_string(n) + " jobs)"), std::string::npos) << md;
  EXPECT_NE(md.find("--reuse-cache-from-older"), std::string::npos);
}

TEST(StudyReport, RendersTheShippedQuickResultsWithoutTheirCache) {
  const std::string shipped = std::string(RESSA_SOURCE_DIR) + "/docs/results/quick/results.json";
  const json r = json::parse(read_file(shipped));
  test::TempDir t;
  const char* keep = std::getenv("RESSA_TEST_REPORT_DIR");
  const std::string out = keep && *keep ? std::string(keep) : t.str();
  const auto plots = study::render_report(r, out);
  const std::string md = read_file(out + "/report.md");
  for (const char* h : {"## 1. Allocation", "## 2. Modality", "## 3. Repair", "## 5. Against the paper"})
    EXPECT_NE(md.find(h), std::string::npos) << h;
  EXPECT_EQ(md.find("## 4. Layer-wise"), std::string::npos) << "a study without OWL rows has no section 4";
  EXPECT_EQ(md.find("`/"), std::string::npos) << "an absolute path in report.md";
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    ASSERT_EQ(plots.size(), 3u);
    for (const auto& p : plots) EXPECT_GT(fs::file_size(p), 1000u) << p;
  }
  json broken = r;
  broken.erase("rows");
  EXPECT_THROW(study::render_report(broken, t.str()), std::runtime_error);
}

TEST(StudyReport, PathRelativeTo) {
  EXPECT_EQ(study::path_relative_to("/a/b/models/x", "/a/b/out"), "../models/x");
  EXPECT_EQ(study::path_relative_to("/a/b/out/cache/p", "/a/b/out"), "cache/p");
  EXPECT_EQ(study::path_relative_to("", "/a"), "");
}

TEST(CpuInfo, ModelNameFromCpuinfoText) {
  EXPECT_EQ(cpu_model_name_from("processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC  9654 96-Core\n"
                                "processor\t: 1\nmodel name\t: other\n"),
            "AMD EPYC 9654 96-Core");
  EXPECT_EQ(cpu_model_name_from("Processor\t: 0\nCPU implementer\t: 0x41\nCPU part\t: 0xd0c\n"),
            "CPU implementer 0x41, CPU part 0xd0c");
  EXPECT_EQ(cpu_model_name_from("Processor\t: ARMv7 Processor rev 4 (v7l)\nHardware\t: BCM2835\n"),
            "ARMv7 Processor rev 4 (v7l)");
  EXPECT_EQ(cpu_model_name_from(""), "");
  EXPECT_FALSE(cpu_model_name().empty());
}
