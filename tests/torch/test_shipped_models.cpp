// Each model shipped in models/ answers 200 test questions of its task at or above the floor
// recorded in tests/fixtures/shipped_models.json, through the built `ressa` binary (data, then
// eval), so a change that silently breaks loading, the prompt or the image path of a real
// model fails here. Every directory in models/ must have a record.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::test::read_json;

TEST(ShippedModels, AccuracyFloorOn200Questions) {
  const fs::path root(RESSA_SOURCE_DIR);
  nlohmann::json rec;
  std::ifstream(root / "tests" / "fixtures" / "shipped_models.json") >> rec;
  const auto& models = rec.at("models");
  int checked = 0;
  for (const auto& e : fs::directory_iterator(root / "models")) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    SCOPED_TRACE(name);
    ASSERT_TRUE(models.contains(name)) << "models/" << name << " has no accuracy floor in shipped_models.json";
    const auto& m = models.at(name);
    const std::string task = m.at("task");
    const int questions = m.at("questions");
    ressa::test::TempDir t;
    auto r = ressa::test::run_ressa("data --task " + task + " --seed 0 --train 1 --val 1 --test " +
                                        std::to_string(questions) + " --out " + (t / "data").string(),
                                    t.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    const std::string json = (t / "eval.json").string();
    r = ressa::test::run_ressa("eval --model " + e.path().string() + " --data " + (t / "data").string() +
                                   " --limit " + std::to_string(questions) + " --json " + json,
                               t.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto res = read_json(json);
    EXPECT_EQ(res.at("n").get<int>(), questions);
    EXPECT_GE(res.at("accuracy").get<double>(), m.at("floor").get<double>())
        << "recorded " << m.at("accuracy") << " when shipped";
    ++checked;
  }
  EXPECT_GE(checked, 2);
}
