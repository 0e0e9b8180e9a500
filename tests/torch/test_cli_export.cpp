// End-to-end tests of `ressa export` and `ressa bench gemv` through the built binary: a tiny
// model trained for a few steps and pruned (70% unstructured, 2:4) is exported in both formats;
// `ressa eval` of the export runs its layers through the sparse kernels and gives exactly the
// pruned model's answers; bad flags and an unstructured model with --format nm exit 2 with one
// "error:" line and leave nothing at --out; bench gemv writes its JSON fields.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "ressa/core/atomic_file.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

using ressa::test::has_error_line;
using ressa::test::read_json;
using Result = ressa::test::CliResult;

fs::path g_root;

Result run_ressa(const std::string& args) { return ressa::test::run_ressa(args, g_root); }

}  // namespace

class CliExport : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    g_root = fs::temp_directory_path() / ("ressa_test_cli_export_" + std::to_string(getpid()));
    fs::remove_all(g_root);
    fs::create_directories(g_root);
    data = (g_root / "data").string();
    const auto dense = (g_root / "dense").string();
    auto r = run_ressa("data --out " + data + " --train 100 --val 20 --test 40 --image-size 32");
    ASSERT_EQ(r.rc, 0) << r.err;
    r = run_ressa("train --data " + data + " --out " + dense + " --preset tiny --steps 10 --batch 8 --threads 1");
    ASSERT_EQ(r.rc, 0) << r.err;
    for (const auto& [name, flag] : {std::pair<std::string, std::string>{"p70", "--sparsity 0.7"}, {"p24", "--pattern 2:4"}}) {
      r = run_ressa("prune --model " + dense + " --data " + data + " --method magnitude " + flag +
                    " --calib-samples 8 --threads 1 --out " + (g_root / name).string());
      ASSERT_EQ(r.rc, 0) << r.err;
    }
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(g_root, ec);
  }
  // eval JSON of `model`, predictions written to <model>.pred.jsonl
  static json eval(const std::string& model, const std::string& extra = "") {
    const auto js = model + ".eval.json";
    auto r = run_ressa("eval --model " + model + " --data " + data + " --threads 1 --batch 16 --json " + js +
                       " --predictions " + model + ".pred.jsonl " + extra);
    EXPECT_EQ(r.rc, 0) << r.err;
    return read_json(js);
  }
  static std::string data;
};
std::string CliExport::data;

TEST_F(CliExport, ExportedModelGivesTheSameAnswersThroughTheKernels) {
  for (const auto& [src, fmt] : {std::pair<std::string, std::string>{"p70", "bitmask"}, {"p24", "nm"}, {"p24", "bitmask"}}) {
    SCOPED_TRACE(src + " " + fmt);
    const auto in = (g_root / src).string(), out = (g_root / (src + "_" + fmt)).string();
    const auto js = out + ".export.json";
    auto r = run_ressa("export --model " + in + " --format " + fmt + " --out " + out + " --json " + js);
    ASSERT_EQ(r.rc, 0) << r.err;
    auto e = read_json(js);
    EXPECT_EQ(e["compressed_layers"].size(), 26u);  // tiny: 2 vision blocks x 6 Linears + 2 language blocks x 7
    EXPECT_LT(e["file_bytes"].get<double>(), e["dense_tensor_bytes"].get<double>());
    for (const char* f : {"config.json", "tokenizer.json", "model.safetensors", "prune.json"})
      EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;

    auto a = eval(in), b = eval(out);
    EXPECT_EQ(b["compression"], fmt);
    EXPECT_EQ(b["compressed_values"], "f32");
    EXPECT_EQ(a["compressed_values"], "");
    EXPECT_EQ(b["sparse_kernel_layers"], 26);
    EXPECT_EQ(a["sparse_kernel_layers"], 0);
    EXPECT_EQ(a["accuracy"], b["accuracy"]);
    EXPECT_EQ(a["sparsity"], b["sparsity"]);
    EXPECT_EQ(ressa::read_file(in + ".pred.jsonl"), ressa::read_file(out + ".pred.jsonl"));
    auto c = eval(out, "--dense-kernels");
    EXPECT_EQ(c["sparse_kernel_layers"], 0);
    EXPECT_EQ(ressa::read_file(in + ".pred.jsonl"), ressa::read_file(out + ".pred.jsonl"));

    r = run_ressa("inspect --model " + out);
    EXPECT_EQ(r.rc, 0) << r.err;
  }
}

// --dtype bf16: the kept values stored as bfloat16 (about half the compressed bytes at 70%); the
// kernels and the dense path agree exactly on the rounded weights the file holds. 2:4 as well.
TEST_F(CliExport, Bf16ValuesHalveTheCompressedBytes) {
  const auto in = (g_root / "p70").string();
  std::map<std::string, json> ex;
  for (const std::string dtype : {"f32", "bf16", "f16"}) {
    const auto out = (g_root / ("p70_" + dtype)).string();
    auto r = run_ressa("export --model " + in + " --format bitmask --dtype " + dtype + " --out " + out + " --json " + out + ".export.json");
    ASSERT_EQ(r.rc, 0) << r.err;
    ex[dtype] = read_json(out + ".export.json");
    EXPECT_EQ(ex[dtype]["dtype"], dtype);
    EXPECT_EQ(read_json((fs::path(out) / "config.json").string())["ressa_sparse"]["values"], dtype);
  }
  // The values are about three quarters of the f32 layers' bytes in this tiny model (its short
  // rows make the bitmask and row offsets weigh more than at 4096 columns); bf16 halves them.
  EXPECT_LT(ex["bf16"]["compressed_bytes"].get<double>(), 0.65 * ex["f32"]["compressed_bytes"].get<double>());
  EXPECT_GT(ex["bf16"]["compressed_bytes"].get<double>(), 0.5 * ex["f32"]["compressed_bytes"].get<double>());
  EXPECT_LT(ex["bf16"]["file_bytes"].get<double>(), ex["f32"]["file_bytes"].get<double>());
  EXPECT_EQ(ex["f16"]["compressed_bytes"], ex["bf16"]["compressed_bytes"]);  // both 2 bytes per value
  // f16 values through the kernels and through the dense path: the same answers.
  const auto out16 = (g_root / "p70_f16").string();
  auto h = eval(out16);
  EXPECT_EQ(h["sparse_kernel_layers"], 26);
  EXPECT_EQ(h["compressed_values"], "f16");
  const auto f16_preds = ressa::read_file(out16 + ".pred.jsonl");
  EXPECT_EQ(eval(out16, "--dense-kernels")["sparse_kernel_layers"], 0);
  EXPECT_EQ(ressa::read_file(out16 + ".pred.jsonl"), f16_preds);
  const auto out = (g_root / "p70_bf16").string();
  auto b = eval(out);
  EXPECT_EQ(b["sparse_kernel_layers"], 26);
  EXPECT_EQ(b["compressed_values"], "bf16");
  const auto kernel_preds = ressa::read_file(out + ".pred.jsonl");
  auto c = eval(out, "--dense-kernels");
  EXPECT_EQ(c["sparse_kernel_layers"], 0);
  EXPECT_EQ(ressa::read_file(out + ".pred.jsonl"), kernel_preds);
  EXPECT_EQ(b["accuracy"], c["accuracy"]);

  std::map<std::string, json> nm_ex;
  for (const std::string dtype : {"f32", "bf16", "f16"}) {
    const auto out = (g_root / ("p24_nm_" + dtype)).string();
    auto r = run_ressa("export --model " + (g_root / "p24").string() + " --format nm --dtype " + dtype + " --out " + out +
                       " --json " + out + ".export.json");
    ASSERT_EQ(r.rc, 0) << r.err;
    nm_ex[dtype] = read_json(out + ".export.json");
    EXPECT_EQ(read_json((fs::path(out) / "config.json").string())["ressa_sparse"]["values"], dtype);
  }
  // 2:4, per 4 weights: 2 values and 4 bitmask bits, 8.5 bytes with f32 values, 4.5 with bf16.
  EXPECT_LT(nm_ex["bf16"]["compressed_bytes"].get<double>(), 0.6 * nm_ex["f32"]["compressed_bytes"].get<double>());
  EXPECT_EQ(nm_ex["f16"]["compressed_bytes"], nm_ex["bf16"]["compressed_bytes"]);
  const auto nm = (g_root / "p24_nm_bf16").string();
  b = eval(nm);
  EXPECT_EQ(b["sparse_kernel_layers"], 26);
  const auto nm_preds = ressa::read_file(nm + ".pred.jsonl");
  c = eval(nm, "--dense-kernels");
  EXPECT_EQ(c["compressed_values"], "bf16");
  EXPECT_EQ(ressa::read_file(nm + ".pred.jsonl"), nm_preds);
}

TEST_F(CliExport, BadInputExitsWithOneErrorLine) {
  const auto out = (g_root / "bad_out").string();
  // Unstructured model as N:M: exit 2, names a layer, writes nothing.
  auto r = run_ressa("export --model " + (g_root / "p70").string() + " --format nm --out " + out);
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_TRUE(has_error_line(r.err)) << r.err;
  EXPECT_NE(r.err.find("layers.0"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
  for (const std::string& args : {"export --model " + (g_root / "p70").string() + " --format csr --out " + out,
                                 "export --model " + (g_root / "p70").string() + " --format bitmask --pattern 2:4 --out " + out,
                                 "export --model " + (g_root / "p24").string() + " --format nm --pattern 2 --out " + out,
                                 "export --model " + (g_root / "p70").string() + " --format bitmask --dtype fp16 --out " + out,
                                 std::string("bench gemv --rows 8 --cols 16"),
                                 std::string("bench gemv --rows 8 --cols 16 --sparsity 0.5 --pattern 2:4"),
                                 std::string("bench gemv --rows 8 --cols 18 --pattern 2:4"),
                                 std::string("bench gemv --rows 8 --cols 16 --sparsity 1.5"),
                                 std::string("bench gemv --rows 8 --cols 16 --sparsity 0.5 --copies -1"),
                                 std::string("bench gemv --rows 8 --cols 16 --sparsity 0.5 --burst 0"),
                                 std::string("bench gemv --rows 64 --cols 64 --sparsity 0.5 --copies 1000000000")}) {
    SCOPED_TRACE(args);
    r = run_ressa(args);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_TRUE(has_error_line(r.err)) << r.err;
    EXPECT_FALSE(fs::exists(out));
  }
  r = run_ressa("export --model " + (g_root / "no_such_model").string() + " --format bitmask --out " + out);
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_TRUE(has_error_line(r.err)) << r.err;
  EXPECT_EQ(run_ressa("export --help").rc, 0);
  EXPECT_EQ(run_ressa("bench gemv --help").rc, 0);
}

TEST_F(CliExport, BenchGemvWritesItsFields) {
  for (const std::string pat : {"--sparsity 0.7", "--pattern 2:4"})
    for (int batch : {1, 5}) {
      SCOPED_TRACE(pat + " batch " + std::to_string(batch));
      const auto js = (g_root / "bench.json").string();
      auto r = run_ressa("bench gemv --rows 40 --cols 72 --batch " + std::to_string(batch) + " " + pat +
                         " --threads 1 --repeats 3 --json " + js);
      ASSERT_EQ(r.rc, 0) << r.err;
      auto j = read_json(js);
      for (const char* k : {"dense_ms", "sparse_ms", "speedup", "bytes_bound", "dense_bytes", "sparse_bytes", "max_rel_diff"})
        EXPECT_TRUE(j.contains(k)) << k;
      EXPECT_GT(j["dense_ms"].get<double>(), 0);
      EXPECT_GT(j["sparse_ms"].get<double>(), 0);
      EXPECT_LT(j["max_rel_diff"].get<double>(), 1e-5);
      EXPECT_EQ(j["batch"], batch);
      EXPECT_GT(j["bytes_bound"].get<double>(), 1.0);
      // Per-round spread: p10 <= p90, and the time quantiles bracket the medians.
      EXPECT_LE(j["speedup_p10"].get<double>(), j["speedup_p90"].get<double>());
      EXPECT_GT(j["speedup_p10"].get<double>(), 0);
      EXPECT_LE(j["sparse_ms_p10"].get<double>(), j["sparse_ms"].get<double>());
      EXPECT_GE(j["sparse_ms_p90"].get<double>(), j["sparse_ms"].get<double>());
      EXPECT_LE(j["dense_ms_p10"].get<double>(), j["dense_ms"].get<double>());
      EXPECT_GE(j["dense_ms_p90"].get<double>(), j["dense_ms"].get<double>());
      EXPECT_EQ(j["copies"], 1);
      EXPECT_EQ(j["cold"], false);
      EXPECT_EQ(j["burst"], 1);  // each call timed alone unless --burst
      // The CLI puts OpenBLAS's idle workers to sleep at once (core/runtime.h) unless told otherwise.
      EXPECT_EQ(j["openblas_thread_timeout"], std::getenv("OPENBLAS_THREAD_TIMEOUT") ? std::getenv("OPENBLAS_THREAD_TIMEOUT") : "4");
    }
  // --copies N rotates over N copies of the weight (the working set grows N-fold).
  const auto js = (g_root / "bench_cold.json").string();
  auto r = run_ressa("bench gemv --rows 40 --cols 72 --sparsity 0.7 --threads 1 --repeats 3 --copies 3 --burst 4 --json " + js);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_NE(r.out.find("3 repeats of 4 calls back to back"), std::string::npos) << r.out;
  auto j = read_json(js);
  EXPECT_EQ(j["burst"], 4);
  EXPECT_EQ(j["repeats"], 3);
  EXPECT_EQ(j["copies"], 3);
  EXPECT_EQ(j["cold"], true);
  EXPECT_DOUBLE_EQ(j["working_set_bytes"].get<double>(), 3.0 * (4.0 * 40 * 72 + j["sparse_bytes"].get<double>() - 4.0 * (72 + 40)));
  EXPECT_LT(j["max_rel_diff"].get<double>(), 1e-5);
  // bf16 values: the sparse side differs from the fp32 dense one by the rounding of the weights.
  r = run_ressa("bench gemv --rows 40 --cols 72 --sparsity 0.7 --dtype bf16 --threads 1 --repeats 3 --json " + js);
  ASSERT_EQ(r.rc, 0) << r.err;
  j = read_json(js);
  EXPECT_EQ(j["dtype"], "bf16");
  EXPECT_EQ(j["format"], "bitmask");
  EXPECT_GT(j["max_rel_diff"].get<double>(), 0.0);
  EXPECT_LT(j["max_rel_diff"].get<double>(), 1e-2);
  r = run_ressa("bench gemv --rows 40 --cols 72 --pattern 2:4 --dtype bf16 --threads 1 --repeats 3 --json " + js);
  ASSERT_EQ(r.rc, 0) << r.err;
  j = read_json(js);
  EXPECT_EQ(j["format"], "nm");
  EXPECT_GT(j["max_rel_diff"].get<double>(), 0.0);
  EXPECT_LT(j["max_rel_diff"].get<double>(), 1e-2);
  // f16 values: 11 significant bits instead of bf16's 8, so a smaller difference.
  for (const std::string pat : {"--sparsity 0.7", "--pattern 2:4"}) {
    r = run_ressa("bench gemv --rows 40 --cols 72 " + pat + " --dtype f16 --threads 1 --repeats 3 --json " + js);
    ASSERT_EQ(r.rc, 0) << r.err;
    j = read_json(js);
    EXPECT_EQ(j["dtype"], "f16");
    EXPECT_GT(j["max_rel_diff"].get<double>(), 0.0) << pat;
    EXPECT_LT(j["max_rel_diff"].get<double>(), 2e-3) << pat;
  }
}

// bench/gemv_bars.py (the acceptance matrix of bench gemv): one JSON per run and pass, and a
// summary whose "met" counts agree with those runs' speedups and the bars (2.0x batch-1 70%,
// 1.5x batch-1 2:4, 1.2x batch-16 70%).
TEST_F(CliExport, GemvBarsCountsWhatItsRunsMeasured) {
  const fs::path out = g_root / "bars";
  auto r = ressa::test::run_shell(std::string("python3 ") + RESSA_SOURCE_DIR + "/bench/gemv_bars.py --ressa " +
                                      RESSA_BINARY + " --shapes 40x72,24x32 --threads 1 --no-cold --passes 2 --min-time 0.01 --burst 2 --out " +
                                      out.string(),
                                  g_root);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto summary = read_json(out / "summary.json");
  ASSERT_EQ(summary["passes"], 2);
  EXPECT_EQ(summary["burst"], 2);
  const auto& configs = summary["configurations"];
  ASSERT_EQ(configs.size(), 6u);  // 2 shapes x (batch-1 70%, batch-1 2:4, batch-16 70%)
  int met = 0;
  for (const auto& c : configs) {
    const bool nm = c.contains("pattern");
    const double bar = c["batch"] == 16 ? 1.2 : nm ? 1.5 : 2.0;
    EXPECT_DOUBLE_EQ(c["bar"].get<double>(), bar);
    ASSERT_EQ(c["speedups"].size(), 2u);
    ASSERT_EQ(c["runs"].size(), 2u);
    EXPECT_NE(c["runs"][0], c["runs"][1]) << "one JSON per pass";
    int passes = 0;
    for (int p = 1; p <= 2; ++p) {
      const std::string name = c["runs"][size_t(p - 1)].get<std::string>();
      const auto run = read_json(out / name);
      EXPECT_EQ(run["rows"], c["rows"]);
      EXPECT_EQ(run["cols"], c["cols"]);
      EXPECT_EQ(run["batch"], c["batch"]);
      EXPECT_EQ(run["threads"], 1);
      EXPECT_EQ(run["burst"], 2);
      EXPECT_EQ(run["format"], nm ? "nm" : "bitmask");
      EXPECT_DOUBLE_EQ(run["speedup"].get<double>(), c["speedups"][size_t(p - 1)].get<double>()) << name;
      passes += run["speedup"].get<double>() >= bar;
    }
    EXPECT_EQ(c["passes_met"], passes);
    EXPECT_EQ(c["met"], passes == 2);
    met += passes == 2;
  }
  EXPECT_EQ(summary["met"], met);
  EXPECT_NE(r.out.find(std::to_string(met) + " of 6 configurations met their bar in every pass."), std::string::npos) << r.out;
  // A malformed --shapes is refused before anything runs.
  r = ressa::test::run_shell(std::string("python3 ") + RESSA_SOURCE_DIR + "/bench/gemv_bars.py --ressa " + RESSA_BINARY +
                                 " --shapes 40x --out " + (g_root / "bars_bad").string(),
                             g_root);
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.err.find("--shapes"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(g_root / "bars_bad" / "summary.json"));
}
