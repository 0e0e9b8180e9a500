// `ressa bench decode` through the built binary on the tiny fixture model: every JSON field the
// benchmark promises, the same greedy tokens dense and sparse with fp32 values, consistent byte
// counts (the compressed form reads fewer bytes), and usage errors (exit 2).
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_run.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::test::read_json;

namespace {
const std::string kModel = std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/llava_tiny";
}

TEST(CliBenchDecode, DenseAgainstSparseInOneRun) {
  ressa::test::TempDir t;
  for (const std::string& setting :
       std::vector<std::string>{"--sparsity 0.7", "--pattern 2:4", "--sparsity 0.6 --dtype bfloat16"}) {
    SCOPED_TRACE(setting);
    const std::string js = (t / "decode.json").string();
    auto r = ressa::test::run_ressa("bench decode --model " + kModel + " " + setting +
                                        " --prompt-tokens 12 --new-tokens 6 --threads 1 --json " + js,
                                    t.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    auto j = read_json(js);
    for (const char* k : {"dense_decode_tps", "sparse_decode_tps", "decode_speedup", "prefill_speedup", "bytes_per_token",
                          "dense_bytes_per_token", "achieved_gbps", "dense_achieved_gbps", "read_gbps"}) {
      ASSERT_TRUE(j.contains(k) && j[k].is_number()) << k;
      EXPECT_GT(j[k].get<double>(), 0) << k;
    }
    EXPECT_LT(j["bytes_per_token"].get<double>(), j["dense_bytes_per_token"].get<double>());
    EXPECT_NEAR(j["decode_speedup"].get<double>(),
                j["sparse_decode_tps"].get<double>() / j["dense_decode_tps"].get<double>(), 1e-9);
    if (setting.find("bfloat16") == std::string::npos) { EXPECT_TRUE(j["same_tokens"].get<bool>()); }
    EXPECT_NE(r.out.find("same tokens:"), std::string::npos) << r.out;
  }
}

TEST(CliBenchDecode, UsageErrors) {
  ressa::test::TempDir t;
  for (const std::string& bad : std::vector<std::string>{"bench decode --sparsity 0.5",  // neither --model nor --config
                                "bench decode --model " + kModel + " --config " + kModel + "/config.json",
                                "bench decode --model " + kModel + " --sparsity 0.5 --pattern 2:4",
                                "bench decode --model " + kModel + " --pattern 0.5",
                                "bench decode --model " + kModel + " --sparsity 0.5 --dtype int8",
                                "bench decode --model " + kModel + " --new-tokens 1"}) {
    SCOPED_TRACE(bad);
    auto r = ressa::test::run_ressa(bad, t.path);
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_TRUE(ressa::test::has_error_line(r.err)) << r.err;
  }
}
