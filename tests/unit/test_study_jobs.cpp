// Tests for ressa::study's job graph: cache keys follow the arguments and dependencies, and a
// pre-existing artifact (a shipped model directory) keys its dependents by its files' contents, so
// replacing the model re-runs them instead of reusing their cached results, while editing its
// README or touching its files does not.
#include "ressa/study/jobs.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.h"

using namespace ressa;
namespace fs = std::filesystem;

namespace {
void write(const fs::path& p, const std::string& text) { std::ofstream(p, std::ios::binary) << text; }

// A model directory `name` under t holding config.json ("{}") and model.safetensors (`weights`).
fs::path model_dir(const test::TempDir& t, const std::string& name, const std::string& weights) {
  const fs::path dir = t / name;
  fs::create_directories(dir);
  write(dir / "config.json", "{}");
  write(dir / "model.safetensors", weights);
  return dir;
}

// The id of an eval job on the model directory `dir` in a fresh graph.
std::string eval_id_on(const std::string& dir) {
  study::JobGraph g("cache");
  const std::string model = g.add_existing("dense", dir, {});
  return g.add("eval", {"eval", "--model", g.out(model)}, {model}, "--json", ".json", 1, {});
}
}  // namespace

TEST(JobGraph, SameArgumentsSameIdOtherArgumentsOtherId) {
  study::JobGraph g("cache");
  const auto a = g.add("data", {"data", "--seed", "0"}, {}, "--out", "", 1, {});
  EXPECT_EQ(g.add("data", {"data", "--seed", "0"}, {}, "--out", "", 1, {}), a);
  EXPECT_NE(g.add("data", {"data", "--seed", "1"}, {}, "--out", "", 1, {}), a);
  EXPECT_EQ(g.at(a).out, (fs::path("cache") / a).string());
}

TEST(JobGraph, ReplacingAnExistingModelChangesItsDependentsKeys) {
  test::TempDir t;
  const fs::path dir = model_dir(t, "fashion-small", "old weights");
  const std::string before = eval_id_on(dir.string());
  EXPECT_EQ(eval_id_on(dir.string()), before);  // nothing changed: the cache is reused

  write(dir / "model.safetensors", "new weights, other size");
  EXPECT_NE(eval_id_on(dir.string()), before);

  const std::string sized = eval_id_on(dir.string());  // same size, other bytes, same time
  const auto when = fs::last_write_time(dir / "model.safetensors");
  write(dir / "model.safetensors", "new weights, same size!");
  fs::last_write_time(dir / "model.safetensors", when);
  EXPECT_NE(eval_id_on(dir.string()), sized);

  const std::string now = eval_id_on(dir.string());
  write(dir / "config.json", "{\"patch_size\": 8}");
  EXPECT_NE(eval_id_on(dir.string()), now);
}

TEST(JobGraph, ReadmeEditsAndNewTimestampsKeepAnExistingModelsKey) {
  test::TempDir t;
  const fs::path dir = model_dir(t, "shapes-small", "weights");
  write(dir / "README.md", "# how it was trained");
  const std::string before = eval_id_on(dir.string());
  write(dir / "README.md", "# how it was trained, with the test accuracy");
  EXPECT_EQ(eval_id_on(dir.string()), before);
  fs::last_write_time(dir / "model.safetensors", fs::last_write_time(dir / "model.safetensors") + std::chrono::hours(2));
  EXPECT_EQ(eval_id_on(dir.string()), before);  // a fresh clone: same bytes, new times
}
