// End to end through the built binary on the `tiny` preset: data -> train -> eval (loss falls,
// eval runs, JSON fields), resume, and bad input (exit codes and one "error:" line).
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fs = std::filesystem;

namespace {
struct CliRun {
  int code;
  std::string err;
};

// Runs `ressa <args>` with stderr captured; stdout discarded.
CliRun ressa(const std::string& args) {
  const std::string err_file = fs::temp_directory_path() / ("ressa_err_" + std::to_string(::getpid()));
  const std::string cmd = std::string(RESSA_BINARY) + " " + args + " > /dev/null 2> " + err_file;
  const int status = std::system(cmd.c_str());
  std::ifstream in(err_file);
  std::stringstream ss;
  ss << in.rdbuf();
  fs::remove(err_file);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, ss.str()};
}

nlohmann::json read_json(const std::string& path) {
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

class CliTrainEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = fs::temp_directory_path() / ("ressa_cli_" + std::to_string(::getpid()));
    fs::create_directories(root_);
    auto r = ressa("data --out " + data() + " --train 256 --val 32 --test 64 --seed 77 --image-size 32");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  static void TearDownTestSuite() { fs::remove_all(root_); }
  static std::string data() { return (root_ / "data").string(); }
  static fs::path root_;
};
fs::path CliTrainEval::root_;
}  // namespace

TEST_F(CliTrainEval, TrainLossFallsAndEvalReportsFields) {
  const std::string m = (root_ / "m").string();
  auto r0 = ressa("train --data " + data() + " --out " + m + "_0 --preset tiny --steps 1 --batch 16 --warmup 1 --threads 1 --json " + m + "_0.json");
  ASSERT_EQ(r0.code, 0) << r0.err;
  auto r = ressa("train --data " + data() + " --out " + m + " --preset tiny --steps 60 --batch 16 --warmup 5 --lr 3e-3 --threads 1 --json " + m + ".json");
  ASSERT_EQ(r.code, 0) << r.err;
  const double first = read_json(m + "_0.json")["final_loss"], last = read_json(m + ".json")["final_loss"];
  EXPECT_LT(last, 0.8 * first) << "loss did not fall: " << first << " -> " << last;
  for (const char* f : {"config.json", "model.safetensors", "tokenizer.json"}) EXPECT_TRUE(fs::exists(fs::path(m) / f)) << f;
  EXPECT_FALSE(fs::exists(m + ".partial"));
  EXPECT_FALSE(fs::exists(m + ".ckpt"));

  auto e = ressa("eval --model " + m + " --data " + data() + " --limit 40 --threads 1 --json " + m + "_eval.json");
  ASSERT_EQ(e.code, 0) << e.err;
  auto j = read_json(m + "_eval.json");
  EXPECT_EQ(j["n"], 40);
  EXPECT_GE(j["accuracy"].get<double>(), 0.0);
  EXPECT_LE(j["accuracy"].get<double>(), 1.0);
  EXPECT_TRUE(j["families"].is_object() && !j["families"].empty());
  EXPECT_EQ(j["sparsity"]["overall"], 0.0);
  auto b = ressa("eval --model " + m + " --data " + data() + " --limit 40 --blind --threads 1 --json " + m + "_blind.json");
  ASSERT_EQ(b.code, 0) << b.err;
  EXPECT_TRUE(read_json(m + "_blind.json")["blind"].get<bool>());
}

TEST_F(CliTrainEval, ResumeAfterInterruptionGivesTheSameModel) {
  const std::string a = (root_ / "full").string(), b = (root_ / "part").string();
  const std::string common = " --data " + data() + " --preset tiny --batch 8 --warmup 2 --threads 1 --checkpoint-every 5 --seed 3";
  ASSERT_EQ(ressa("train" + common + " --out " + a + " --steps 20").code, 0);
  // Simulate a kill after step 10: run 10 steps of a 20-step schedule by keeping only the checkpoint.
  ASSERT_EQ(ressa("train" + common + " --out " + b + " --steps 20 --stop-after 10").code, 0);
  EXPECT_FALSE(fs::exists(b)) << "an interrupted run must not leave a model at --out";
  ASSERT_TRUE(fs::exists(b + ".ckpt/state.json"));
  auto r = ressa("train" + common + " --out " + b + " --steps 20 --resume");
  ASSERT_EQ(r.code, 0) << r.err;
  std::ifstream fa(a + "/model.safetensors", std::ios::binary), fb(b + "/model.safetensors", std::ios::binary);
  std::stringstream sa, sb;
  sa << fa.rdbuf();
  sb << fb.rdbuf();
  EXPECT_TRUE(sa.str() == sb.str()) << "resumed model differs from the uninterrupted one";
}

TEST_F(CliTrainEval, BadInputGivesOneErrorLineAndExitCode) {
  auto has_error_line = [](const CliRun& r) { return r.err.rfind("error: ", 0) == 0 || r.err.find("\nerror: ") != std::string::npos; };
  // Bad flags: exit 2.
  auto r = ressa("train --data " + data() + " --out /tmp/x --preset nosuch");
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(has_error_line(r)) << r.err;
  r = ressa("eval --model /nonexistent --data " + data() + " --limit -3");
  EXPECT_EQ(r.code, 2);
  // A corrupt dataset line: exit 1, naming file and line.
  const std::string bad = (root_ / "bad").string();
  fs::create_directories(bad);
  fs::copy(data() + "/images", bad + "/images", fs::copy_options::recursive);
  for (const char* s : {"train", "val"}) fs::copy_file(data() + "/" + s + ".jsonl", bad + "/" + s + ".jsonl");
  std::ofstream(bad + "/test.jsonl") << "{\"id\": \"a\", \"image\": \"images/test_000000.png\", \"question\": \"what ?\"}\n";
  // CTest runs each test in its own process: train a 1-step model here.
  const std::string m = (root_ / "m_bad").string();
  ASSERT_EQ(ressa("train --data " + data() + " --out " + m + " --preset tiny --steps 1 --batch 4 --warmup 1 --threads 1").code, 0);
  r = ressa("eval --model " + m + " --data " + bad + " --threads 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(has_error_line(r)) << r.err;
  EXPECT_NE(r.err.find("test.jsonl:1"), std::string::npos) << r.err;
  // A missing image: exit 1 naming the image.
  std::ofstream(bad + "/test.jsonl") << "{\"id\": \"a\", \"image\": \"images/nope.png\", \"question\": \"what color is the cross ?\", \"answer\": \"red\", \"family\": \"color\"}\n";
  r = ressa("eval --model " + m + " --data " + bad + " --threads 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("nope.png"), std::string::npos) << r.err;
  // A question with words the model's tokenizer lacks.
  std::ofstream(bad + "/test.jsonl") << "{\"id\": \"a\", \"image\": \"images/test_000000.png\", \"question\": \"what colour is the zebra ?\", \"answer\": \"red\", \"family\": \"color\"}\n";
  r = ressa("eval --model " + m + " --data " + bad + " --threads 1");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("lacks"), std::string::npos) << r.err;
}
