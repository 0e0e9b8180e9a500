// End-to-end tests of `ressa prune` and `ressa prune-tensor` through the built binary: a tiny
// model trained for a few steps on generated data is pruned with every method at 2:4 (exit code,
// JSON fields, `ressa inspect` N:M validity, `ressa eval` on the result), per-tower overrides, and
// bad flags (exit 2, one "error:" line, nothing created at --out).
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "cli_run.h"
#include "ressa/core/atomic_file.h"
#include "ressa/io/safetensors.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using ressa::test::has_error_line;
using ressa::test::read_json;
using Result = ressa::test::CliResult;

fs::path g_root;

Result run_ressa(const std::string& args) { return ressa::test::run_ressa(args, g_root); }

}  // namespace

class CliPrune : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_root = fs::temp_directory_path() / ("ressa_test_cli_prune_" + std::to_string(getpid()));
    fs::remove_all(g_root);
    fs::create_directories(g_root);
    data = (g_root / "data").string();
    dense = (g_root / "dense").string();
    auto r = run_ressa("data --out " + data + " --train 200 --val 50 --test 50 --image-size 32");
    ASSERT_EQ(r.rc, 0) << r.err;
    r = run_ressa("train --data " + data + " --out " + dense + " --preset tiny --steps 30 --batch 8 --threads 1");
    ASSERT_EQ(r.rc, 0) << r.err;
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(g_root, ec);
  }
  static std::string prune_args(const std::string& rest, const std::string& out) {
    return "prune --model " + dense + " --data " + data + " --calib-samples 32 --threads 1 --out " + out + " " + rest;
  }
  static std::string data, dense;
};
std::string CliPrune::data, CliPrune::dense;

TEST_F(CliPrune, EveryMethodAtTwoFour) {
  ::setenv("RESSA_PROGRESS_SECONDS", "0", 1);  // every progress line, although stderr is a file
  for (const std::string method : {"magnitude", "wanda", "sparsegpt", "dsnot"}) {
    SCOPED_TRACE(method);
    const auto out = g_root / ("p_" + method), js = g_root / ("p_" + method + ".json");
    auto r = run_ressa(prune_args("--method " + method + " --pattern 2:4 --json " + js.string(), out.string()));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("self_attn.q_proj"), std::string::npos) << "progress names the layer being pruned";
    auto j = read_json(js);
    EXPECT_EQ(j["method"], method);
    EXPECT_EQ(j["pattern"], "2:4");
    EXPECT_GT(j["seconds"].get<double>(), 0);
    EXPECT_GT(j["peak_rss_mb"].get<double>(), 0);
    for (const char* k : {"vision", "language", "overall", "model"}) ASSERT_TRUE(j["sparsity"].contains(k)) << k;
    EXPECT_NEAR(j["sparsity"]["vision"].get<double>(), 0.5, 1e-9);
    EXPECT_NEAR(j["sparsity"]["language"].get<double>(), 0.5, 1e-9);
    EXPECT_NEAR(j["sparsity"]["overall"].get<double>(), 0.5, 1e-9);
    EXPECT_LT(j["sparsity"]["model"].get<double>(), 0.5);
    ASSERT_EQ(j["layers"].size(), 2u * 6 + 2u * 7);  // tiny: 2 CLIP blocks x 6, 2 Llama blocks x 7
    for (auto& l : j["layers"]) {
      EXPECT_TRUE(l["name"].is_string());
      EXPECT_NEAR(l["sparsity"].get<double>(), 0.5, 1e-9);
      EXPECT_GE(l["recon_error"].get<double>(), 0);
      EXPECT_GE(l["seconds"].get<double>(), 0);
    }
    std::cout << "[timing] ressa prune --method " << method << " --pattern 2:4 (tiny, 32 samples): "
              << j["seconds"].get<double>() << " s, peak RSS " << j["peak_rss_mb"].get<double>() << " MB\n";
    for (const char* f : {"config.json", "model.safetensors", "masks.safetensors", "tokenizer.json", "prune.json"})
      EXPECT_TRUE(fs::exists(out / f)) << f;
    const auto ij = g_root / ("i_" + method + ".json");
    r = run_ressa("inspect --model " + out.string() + " --json " + ij.string());
    ASSERT_EQ(r.rc, 0) << r.err;
    auto i = read_json(ij);
    EXPECT_EQ(i["nm_valid"], true);
    EXPECT_EQ(i["has_masks"], true);
    EXPECT_EQ(i["prune"]["method"], method);
  }
  // The pruned directory is a normal model directory: eval runs on it.
  const auto ej = g_root / "eval.json";
  auto r = run_ressa("eval --model " + (g_root / "p_wanda").string() + " --data " + data + " --limit 10 --threads 1 --json " +
                 ej.string());
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NEAR(read_json(ej)["sparsity"]["overall"].get<double>(), 0.5, 1e-9);
}

TEST_F(CliPrune, PerTowerOverrides) {
  const auto out = g_root / "p_lang_only", js = g_root / "p_lang_only.json";
  auto r = run_ressa(prune_args("--method wanda --sparsity 0.5 --vision-sparsity 0 --json " + js.string(), out.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j = read_json(js);
  EXPECT_EQ(j["sparsity"]["vision"].get<double>(), 0.0);
  EXPECT_NEAR(j["sparsity"]["language"].get<double>(), 0.5, 1e-9);
  EXPECT_EQ(j["layers"].size(), 2u * 7);
  auto rec = read_json(out / "prune.json");
  EXPECT_EQ(rec["pattern"], "0.5");
  EXPECT_EQ(rec["vision_pattern"], "0");
  EXPECT_EQ(rec["language_pattern"], "0.5");
  EXPECT_EQ(rec["dense_model"]["path"], fs::absolute(dense).lexically_normal().string());

  const auto out2 = g_root / "p_mixed", js2 = g_root / "p_mixed.json";
  r = run_ressa(prune_args("--method sparsegpt --pattern 2:4 --language-pattern 4:8 --calib dense --json " + js2.string(),
                       out2.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  auto j2 = read_json(js2);
  EXPECT_EQ(j2["pattern"], "mixed");
  EXPECT_EQ(j2["calib"], "dense");
  EXPECT_NEAR(j2["sparsity"]["overall"].get<double>(), 0.5, 1e-9);
}

TEST_F(CliPrune, BadFlagsExitTwoAndCreateNothing) {
  const auto out = g_root / "p_bad";
  const std::vector<std::string> cases = {
      "--method wanda --sparsity 1.5",
      "--method wanda --pattern 4:2",
      "--method foo --sparsity 0.5",
      "--method wanda --sparsity 0.5 --pattern 2:4",
      "--method wanda",
      "--method wanda --pattern 0.5",
      "--method wanda --pattern 2:3",  // 3 does not divide the tiny model's d_in (32)
      "--method wanda --sparsity 0.5 --calib bogus",
      "--method wanda --sparsity 0.5 --calib-samples 0",
      "--method wanda --sparsity 0.5 --granularity column",
      "--method dsnot --sparsity 0.5 --dsnot-base dsnot",
      "--method wanda --sparsity 0.5 --vision-sparsity 0.5 --vision-pattern 2:4",
      "--sparsity 0.5",  // neither --method nor --recipe
      "--method wanda --pattern 2:4 --allocation owl",
      "--method wanda --sparsity 0.5 --allocation outlier",
      "--method wanda --sparsity 0.5 --allocation owl --owl-lambda 1.5",
      "--method wanda --sparsity 0.5 --allocation owl --owl-threshold 0",
      "--method wanda --sparsity 0.5 --targets 're:('",
      "--method wanda --sparsity 0.5 --override 're:.*q_proj'",
      "--method wanda --sparsity 0.5 --override 're:.*q_proj=2:3'",  // 3 does not divide d_in
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c);
    auto r = run_ressa(prune_args(c, out.string()));
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_TRUE(has_error_line(r.err)) << r.err;
    EXPECT_FALSE(fs::exists(out));
    EXPECT_FALSE(fs::exists(out.string() + ".partial"));
  }
  auto r = run_ressa("prune --model " + (g_root / "missing").string() + " --data " + data +
                 " --method wanda --sparsity 0.5 --out " + out.string());
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_TRUE(has_error_line(r.err)) << r.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_EQ(run_ressa("prune --help").rc, 0);
  EXPECT_EQ(run_ressa("prune-tensor --help").rc, 0);
}

namespace {
// Every tensor of two safetensors files, byte for byte (the metadata may differ).
void expect_same_tensors(const fs::path& a, const fs::path& b) {
  auto fa = ressa::io::SafetensorsFile::open(a.string()), fb = ressa::io::SafetensorsFile::open(b.string());
  ASSERT_EQ(fa.tensors().size(), fb.tensors().size()) << a << " vs " << b;
  for (const auto& info : fa.tensors()) {
    const auto& other = fb.at(info.name);
    ASSERT_EQ(info.nbytes(), other.nbytes()) << info.name;
    EXPECT_EQ(std::memcmp(fa.data(info), fb.data(other), info.nbytes()), 0) << a << " vs " << b << ": " << info.name;
  }
}
}  // namespace

// A recipe and the equivalent flags prune identically; the recipe.yaml every pruned model
// records replays its pruning; a recipe key ressa does not implement is refused by name.
TEST_F(CliPrune, RecipeAndFlagsPruneIdentically) {
  const auto flags = g_root / "r_flags", written = g_root / "r_written", replay = g_root / "r_replay";
  auto r = run_ressa(prune_args("--method wanda --sparsity 0.6 --vision-sparsity 0.5 --allocation owl --owl-threshold 3 "
                                "--ignore 're:.*fc2' --override 're:.*q_proj=0.7'",
                                flags.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto recipe = (g_root / "recipe.yaml").string();
  ressa::write_file_atomic(recipe, R"(version: 1.1.0
pruning_stage:
  pruning_modifiers:
    WandaPruningModifier:
      sparsity: 0.6
      mask_structure: "0:0"
      ignore: ["re:.*fc2"]
      sparsity_profile: owl
      owl_m: 3
      owl_lmbda: 0.08
      ressa_overrides:
        "re:.*q_proj": "0.7"
        're:(model\.)?vision_tower\..*': "0.5"
)");
  r = run_ressa(prune_args("--recipe " + recipe, written.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  r = run_ressa(prune_args("--recipe " + (flags / "recipe.yaml").string(), replay.string()));
  ASSERT_EQ(r.rc, 0) << r.err;
  for (const auto& other : {written, replay}) {
    SCOPED_TRACE(other.string());
    expect_same_tensors(flags / "masks.safetensors", other / "masks.safetensors");
    expect_same_tensors(flags / "model.safetensors", other / "model.safetensors");
  }
  auto rec = read_json(flags / "prune.json");
  EXPECT_EQ(rec["allocation"], "owl");
  EXPECT_EQ(rec["recipe"].get<std::string>(), ressa::read_file((flags / "recipe.yaml").string()));
  std::set<std::string> ratios;  // OWL: the blocks' ratios differ
  for (const auto& l : rec["layers"]) ratios.insert(l["pattern"].get<std::string>());
  EXPECT_GE(ratios.size(), 3u);

  const auto bad = (g_root / "bad_recipe.yaml").string();
  ressa::write_file_atomic(bad, "pruning_stage:\n  pruning_modifiers:\n    SparseGPTModifier:\n      sparsity: 0.5\n"
                                "      sequential_update: true\n");
  const auto out = g_root / "r_bad";
  for (const std::string& args : std::vector<std::string>{"--recipe " + bad, "--recipe " + recipe + " --method wanda",
                                                          "--recipe " + recipe + " --sparsity 0.5"}) {
    SCOPED_TRACE(args);
    r = run_ressa(prune_args(args, out.string()));
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_TRUE(has_error_line(r.err)) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
  r = run_ressa(prune_args("--recipe " + bad, out.string()));
  EXPECT_NE(r.err.find("sequential_update"), std::string::npos) << r.err;
  r = run_ressa(prune_args("--recipe " + recipe + " --method wanda", out.string()));
  EXPECT_NE(r.err.find("--method"), std::string::npos) << r.err;
}

TEST_F(CliPrune, PruneTensor) {
  std::vector<float> w(8 * 16), x(32 * 16), bad(32 * 12);
  for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>((i * 37 % 23) - 11) / 7.0f;
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 13 % 17) - 8) / 5.0f;
  const auto wp = (g_root / "w.safetensors").string(), xp = (g_root / "x.safetensors").string(),
             bp = (g_root / "xbad.safetensors").string(), op = (g_root / "o.safetensors").string();
  ressa::io::write_safetensors(wp, {{"weight", ressa::io::DType::F32, {8, 16}, w.data()}});
  ressa::io::write_safetensors(xp, {{"inputs", ressa::io::DType::F32, {32, 16}, x.data()}});
  ressa::io::write_safetensors(bp, {{"inputs", ressa::io::DType::F32, {32, 12}, bad.data()}});
  auto r = run_ressa("prune-tensor --weight " + wp + " --inputs " + xp + " --method sparsegpt --pattern 2:4 --out " + op);
  ASSERT_EQ(r.rc, 0) << r.err;
  auto f = ressa::io::SafetensorsFile::open(op);
  ASSERT_NE(f.find("weight"), nullptr);
  ASSERT_NE(f.find("mask"), nullptr);
  EXPECT_EQ(f.find("mask")->dtype, ressa::io::DType::U8);
  EXPECT_EQ(f.find("weight")->shape, (std::vector<int64_t>{8, 16}));
  const uint8_t* m = f.data(*f.find("mask"));
  for (int g = 0; g < 8 * 16 / 4; ++g) EXPECT_EQ(m[4 * g] + m[4 * g + 1] + m[4 * g + 2] + m[4 * g + 3], 2) << g;

  const auto op2 = (g_root / "o2.safetensors").string();
  for (const std::string& c : {"--inputs " + bp + " --method wanda --sparsity 0.5",
                              "--inputs " + xp + " --method wanda --pattern 2:5",
                              "--inputs " + xp + " --method wanda --sparsity 0.5 --pattern 2:4"}) {
    SCOPED_TRACE(c);
    r = run_ressa("prune-tensor --weight " + wp + " " + c + " --out " + op2);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_TRUE(has_error_line(r.err)) << r.err;
    EXPECT_FALSE(fs::exists(op2));
  }
}
