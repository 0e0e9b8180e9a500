// End-to-end test of `ressa reproduce --quick` through the built binary on the `tiny` preset with
// minimal sizes: every section is produced, the numbers in results.json are consistent with the
// method (repair keeps the pruned sparsity, LoRA refills it), a second run is served entirely from
// the cache, and a bad flag creates nothing.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <map>
#include <set>

#include "cli_run.h"
#include "ressa/core/atomic_file.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

ressa::test::CliResult run_ressa(const fs::path& root, const std::string& args) {
  return ressa::test::run_ressa(args, root);
}

}  // namespace

TEST(CliReproduce, QuickStudyOnTinyThenCacheThenBadFlag) {
  const fs::path root = fs::temp_directory_path() / ("ressa_test_cli_reproduce_" + std::to_string(getpid()));
  fs::remove_all(root);
  fs::create_directories(root);
  const fs::path out = root / "study";
  const std::string args = "reproduce --out " + out.string() +
                           " --quick --preset tiny --train-steps 20 --train-examples 300 --repair-steps 3 "
                           "--eval-limit 30 --calib-samples 16 --models none --jobs 2";
  auto r = run_ressa(root, args);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json res = json::parse(ressa::read_file((out / "results.json").string()));
  const std::string md = ressa::read_file((out / "report.md").string());
  for (const char* h : {"## 1. Allocation", "## 2. Modality", "## 3. Repair", "## 4. Layer-wise allocation",
                        "## 5. Against the paper"})
    EXPECT_NE(md.find(h), std::string::npos) << h;
  EXPECT_TRUE(res["failed"].empty()) << res["failed"].dump();
  std::set<std::string> sections;
  std::map<std::string, double> prune_overall;  // prune job -> overall sparsity of its eval
  for (const auto& row : res["rows"]) {
    sections.insert(row["section"].get<std::string>());
    ASSERT_TRUE(row["accuracy"].is_number()) << row.dump();
    EXPECT_GE(row["accuracy"].get<double>(), 0.0);
    EXPECT_LE(row["accuracy"].get<double>(), 1.0);
    EXPECT_EQ(row["n"].get<int>(), 30);
    if ((row["section"] == "repair" || row["section"] == "owl") && row["stage"] == "prune")
      prune_overall[row["prune_job"]] = row["sparsity"]["overall"].get<double>();
  }
  EXPECT_EQ(sections, (std::set<std::string>{"allocation", "modality", "repair", "ablation", "owl"}));
  int checked = 0;
  for (const auto& row : res["rows"]) {
    if (row["section"] == "allocation") {  // the split is what was asked for, per tower
      EXPECT_NEAR(row["sparsity"]["vision"].get<double>(), row["vision_target"].get<double>(), 0.002);
      EXPECT_NEAR(row["sparsity"]["language"].get<double>(), row["language_target"].get<double>(), 0.002);
    }
    if (row["section"] == "repair" && row["stage"] == "ressa") {  // SparseLoRA keeps every zero
      EXPECT_DOUBLE_EQ(row["sparsity"]["overall"].get<double>(), prune_overall.at(row["prune_job"]));
      EXPECT_EQ(row["repair"]["filled_pruned_positions"].get<int64_t>(), 0);
      ++checked;
    }
    if (row["section"] == "ablation" && row["ablation"] == "lora") {  // plain LoRA refills them
      EXPECT_GT(row["repair"]["filled_pruned_positions"].get<int64_t>(), 0);
      EXPECT_LT(row["sparsity"]["overall"].get<double>(), 0.01);
    }
  }
  EXPECT_EQ(checked, 4);  // wanda, sparsegpt x 70%, 2:4
  int owl_rows = 0;
  for (const auto& row : res["rows"]) {
    if (row["section"] != "owl") continue;
    ++owl_rows;
    if (row["stage"] == "ressa") {  // the repair keeps the allocation's zeros
      EXPECT_DOUBLE_EQ(row["sparsity"]["overall"].get<double>(), prune_overall.at(row["prune_job"]));
      continue;
    }
    // OWL keeps each tower's mean (the accounting counts every targeted layer).
    EXPECT_NEAR(row["sparsity"]["vision"].get<double>(), 0.7, 0.005) << row["allocation"];
    EXPECT_NEAR(row["sparsity"]["language"].get<double>(), 0.7, 0.005) << row["allocation"];
    std::set<std::string> ratios;
    for (const auto& l : row["layers"]) ratios.insert(l["pattern"].get<std::string>());
    EXPECT_EQ(ratios.size() > 1, row["allocation"] == "owl") << row.dump();
  }
  EXPECT_EQ(owl_rows, 8);  // wanda, sparsegpt x uniform, OWL x prune only, + RESSA
  if (std::system("command -v gnuplot >/dev/null 2>&1") == 0) {
    for (const char* p : {"allocation.png", "modality.png", "repair.png", "owl_layers.png"})
      EXPECT_GT(fs::file_size(out / "plots" / p), 1000u) << p;
  }

  // Second run: everything comes from the cache and the report is rewritten.
  r = run_ressa(root, args);
  ASSERT_EQ(r.rc, 0) << r.err;
  const json res2 = json::parse(ressa::read_file((out / "results.json").string()));
  EXPECT_EQ(res2["run"]["ran"].get<int>(), 0);
  EXPECT_EQ(res2["run"]["cached"].get<int>(), res2["run"]["jobs"].get<int>());
  EXPECT_EQ(res2["rows"].size(), res["rows"].size());

  // A job that fails: one modality row's pruned model is replaced by a plain file and its eval
  // result removed, so that eval re-runs and fails. The study still writes its report, lists the
  // failure, shows the row as missing, and exits non-zero.
  std::string eval_id, model_dir;
  for (const auto& row : res2["rows"])
    if (row["section"] == "modality") {
      eval_id = row["eval_job"].get<std::string>();
      model_dir = row["model_dir"].get<std::string>();
      break;
    }
  ASSERT_FALSE(eval_id.empty());
  const fs::path cache = out / "cache";
  ASSERT_TRUE(fs::remove(cache / (eval_id + ".json")));
  const fs::path model = fs::path(model_dir).is_absolute() ? fs::path(model_dir) : out / model_dir;  // relative to the study folder
  ASSERT_TRUE(fs::is_directory(model)) << model;
  fs::remove_all(model);
  ressa::write_file_atomic(model.string(), "not a model directory\n");
  r = run_ressa(root, args);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("jobs failed"), std::string::npos) << r.err;
  const json res3 = json::parse(ressa::read_file((out / "results.json").string()));
  EXPECT_TRUE(res3["failed"].contains(eval_id)) << res3["failed"].dump();
  EXPECT_EQ(res3["rows"].size(), res["rows"].size());
  int missing = 0;
  for (const auto& row : res3["rows"])
    if (row["eval_job"] == eval_id) {
      EXPECT_FALSE(row["accuracy"].is_number()) << row.dump();
      ++missing;
    }
  EXPECT_EQ(missing, 1);
  const std::string md3 = ressa::read_file((out / "report.md").string());
  EXPECT_NE(md3.find(eval_id), std::string::npos);  // the failures section names it

  // A bad flag is a usage error and creates nothing.
  const fs::path bad = root / "bad";
  r = run_ressa(root, "reproduce --out " + bad.string() + " --task nope");
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.err.find("error:"), std::string::npos);
  EXPECT_FALSE(fs::exists(bad));
  fs::remove_all(root);
}
