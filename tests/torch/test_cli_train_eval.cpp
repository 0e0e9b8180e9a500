// End to end through the built binary on the `tiny` preset: data -> train -> eval (loss falls,
// eval runs, JSON fields), resume, and bad input (exit codes and one "error:" line).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli_run.h"

namespace fs = std::filesystem;

namespace {
// Where run()'s output is captured: a directory of this process.
const fs::path& io_dir() {
  static const fs::path d = [] {
    const fs::path p = fs::temp_directory_path() / ("ressa_cli_io_" + std::to_string(::getpid()));
    fs::create_directories(p);
    return p;
  }();
  return d;
}

// Runs `ressa <args>` with stdout and stderr captured.
ressa::test::CliResult run(const std::string& args) { return ressa::test::run_ressa(args, io_dir()); }
using ressa::test::read_json;

class CliTrainEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("ressa_cli_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    auto r = run("data --out " + data() + " --train 256 --val 32 --test 64 --seed 77 --image-size 32");
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  static void TearDownTestSuite() {
    fs::remove_all(root_);
    fs::remove_all(io_dir());
  }
  static std::string data() { return (root_ / "data").string(); }
  static fs::path root_;
};
fs::path CliTrainEval::root_;
}  // namespace

TEST_F(CliTrainEval, TrainLossFallsAndEvalReportsFields) {
  const std::string m = (root_ / "m").string();
  auto r0 = run("train --data " + data() + " --out " + m + "_0 --preset tiny --steps 1 --batch 16 --warmup 1 --threads 1 --json " + m + "_0.json");
  ASSERT_EQ(r0.rc, 0) << r0.err;
  auto r = run("train --data " + data() + " --out " + m + " --preset tiny --steps 60 --batch 16 --warmup 5 --lr 3e-3 --threads 1 --json " + m + ".json");
  ASSERT_EQ(r.rc, 0) << r.err;
  const double first = read_json(m + "_0.json")["final_loss"], last = read_json(m + ".json")["final_loss"];
  EXPECT_LT(last, 0.8 * first) << "loss did not fall: " << first << " -> " << last;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) EXPECT_TRUE(fs::exists(fs::path(m) / f)) << f;
  EXPECT_FALSE(fs::exists(m + ".partial"));
  EXPECT_FALSE(fs::exists(m + ".ckpt"));

  auto e = run("eval --model " + m + " --data " + data() + " --limit 40 --threads 1 --json " + m + "_eval.json");
  ASSERT_EQ(e.rc, 0) << e.err;
  auto j = read_json(m + "_eval.json");
  EXPECT_EQ(j["n"], 40);
  EXPECT_GE(j["accuracy"].get<double>(), 0.0);
  EXPECT_LE(j["accuracy"].get<double>(), 1.0);
  EXPECT_TRUE(j["families"].is_object() && !j["families"].empty());
  EXPECT_EQ(j["sparsity"]["overall"], 0.0);
  auto b = run("eval --model " + m + " --data " + data() + " --limit 40 --blind --threads 1 --json " + m + "_blind.json");
  ASSERT_EQ(b.rc, 0) << b.err;
  EXPECT_TRUE(read_json(m + "_blind.json")["blind"].get<bool>());
}

TEST_F(CliTrainEval, ResumeAfterInterruptionGivesTheSameModel) {
  const std::string a = (root_ / "full").string(), b = (root_ / "part").string();
  const std::string common = " --data " + data() + " --preset tiny --batch 8 --warmup 2 --threads 1 --checkpoint-every 5 --seed 3";
  ASSERT_EQ(run("train" + common + " --out " + a + " --steps 20").rc, 0);
  // Simulate a kill after step 10: run 10 steps of a 20-step schedule by keeping only the checkpoint.
  ASSERT_EQ(run("train" + common + " --out " + b + " --steps 20 --stop-after 10").rc, 0);
  EXPECT_FALSE(fs::exists(b)) << "an interrupted run must not leave a model at --out";
  ASSERT_TRUE(fs::exists(b + ".ckpt/state.json"));
  auto r = run("train" + common + " --out " + b + " --steps 20 --resume");
  ASSERT_EQ(r.rc, 0) << r.err;
  std::ifstream fa(a + "/model.safetensors", std::ios::binary), fb(b + "/model.safetensors", std::ios::binary);
  std::stringstream sa, sb;
  sa << fa.rdbuf();
  sb << fb.rdbuf();
  EXPECT_TRUE(sa.str() == sb.str()) << "resumed model differs from the uninterrupted one";
}

TEST_F(CliTrainEval, BadInputGivesOneErrorLineAndExitCode) {
  // Bad flags: exit 2.
  auto r = run("train --data " + data() + " --out /tmp/x --preset nosuch");
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(ressa::test::has_error_line(r.err)) << r.err;
  r = run("eval --model /nonexistent --data " + data() + " --limit -3");
  EXPECT_EQ(r.rc, 2);
  // A corrupt dataset line: exit 1, naming file and line.
  const std::string bad = (root_ / "bad").string();
  fs::create_directories(bad);
  fs::copy(data() + "/images", bad + "/images", fs::copy_options::recursive);
  for (const char* s : {"train", "val"}) fs::copy_file(data() + "/" + s + ".jsonl", bad + "/" + s + ".jsonl");
  std::ofstream(bad + "/test.jsonl") << "{\"id\": \"a\", \"image\": \"images/test_000000.png\", \"question\": \"what ?\"}\n";
  // CTest runs each test in its own process: train a 1-step model here.
  const std::string m = (root_ / "m_bad").string();
  ASSERT_EQ(run("train --data " + data() + " --out " + m + " --preset tiny --steps 1 --batch 4 --warmup 1 --threads 1").rc, 0);
  r = run("eval --model " + m + " --data " + bad + " --threads 1");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(ressa::test::has_error_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("test.jsonl:1"), std::string::npos) << r.err;
  // A missing image: exit 1 naming the image.
  std::ofstream(bad + "/test.jsonl") << "{\"id\": \"a\", \"image\": \"images/nope.png\", \"question\": \"what color is the cross ?\", \"answer\": \"red\", \"family\": \"color\"}\n";
  r = run("eval --model " + m + " --data " + bad + " --threads 1");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("nope.png"), std::string::npos) << r.err;
  // A question with words the model's tokenizer lacks.
  std::ofstream(bad + "/test.jsonl") << "{\"id\": \"a\", \"image\": \"images/test_000000.png\", \"question\": \"what colour is the zebra ?\", \"answer\": \"red\", \"family\": \"color\"}\n";
  r = run("eval --model " + m + " --data " + bad + " --threads 1");
  EXPECT_EQ(r.rc, 1);
  EXPECT_NE(r.err.find("lacks"), std::string::npos) << r.err;
}
