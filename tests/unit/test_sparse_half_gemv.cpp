// sparse::half_gemv_rows (dense fp16 / bf16 weights widened in registers) on each code path this
// CPU runs, against a float64 product of the same widened weights: odd column counts (vector
// tails), every batch size 1..4, a row range that leaves the other rows of y untouched.
#include "ressa/sparse/half_gemv.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "ressa/core/cpu_info.h"

using namespace ressa::sparse;

namespace {

class HalfGemvPath : public ::testing::TestWithParam<Isa> {
 protected:
  void SetUp() override {
    if (best_isa(ressa::cpu_features()) < GetParam()) {
      GTEST_SKIP() << "this CPU cannot run the " << to_string(GetParam()) << " path";
    }
  }
};

TEST_P(HalfGemvPath, MatchesAFloat64ProductOfTheWidenedWeights) {
  std::mt19937 rng(7);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  for (ValueType t : {ValueType::f16, ValueType::bf16}) {
    for (int64_t cols : {1, 15, 16, 77, 300}) {
      const int64_t rows = 37;
      std::vector<uint16_t> w(size_t(rows * cols));
      for (auto& v : w) v = to_half(t, n01(rng) * 0.1f);
      for (int64_t batch = 1; batch <= kHalfGemvMaxBatch; ++batch) {
        std::vector<float> x(size_t(batch * cols));
        for (auto& v : x) v = n01(rng);
        std::vector<float> y(size_t(batch * rows), -7.0f);
        const int64_t r0 = 3, r1 = 30;
        half_gemv_rows(GetParam(), t, w.data(), rows, cols, r0, r1, x.data(), batch, y.data());
        for (int64_t b = 0; b < batch; ++b)
          for (int64_t r = 0; r < rows; ++r) {
            const float got = y[size_t(b * rows + r)];
            if (r < r0 || r >= r1) {
              EXPECT_EQ(got, -7.0f) << "row " << r << " is outside the range";
              continue;
            }
            double ref = 0.0, mag = 0.0;
            for (int64_t c = 0; c < cols; ++c) {
              const double p = double(from_half(t, w[size_t(r * cols + c)])) * double(x[size_t(b * cols + c)]);
              ref += p;
              mag += std::fabs(p);
            }
            EXPECT_NEAR(got, ref, 1e-6 * mag + 1e-7) << to_string(t) << " cols " << cols << " batch " << batch
                                                     << " row " << r;
          }
      }
    }
  }
}

TEST(HalfGemv, RefusesWhatItDoesNotCompute) {
  std::vector<uint16_t> w(4);
  std::vector<float> x(2 * 8), y(2 * 8);
  EXPECT_THROW(half_gemv_rows(Isa::scalar, ValueType::f32, w.data(), 2, 2, 0, 2, x.data(), 1, y.data()),
               std::invalid_argument);
  EXPECT_THROW(half_gemv_rows(Isa::scalar, ValueType::f16, w.data(), 2, 2, 0, 2, x.data(), 0, y.data()),
               std::invalid_argument);
  EXPECT_THROW(half_gemv_rows(Isa::scalar, ValueType::f16, w.data(), 2, 2, 0, 2, x.data(), kHalfGemvMaxBatch + 1,
                              y.data()),
               std::invalid_argument);
  EXPECT_THROW(half_gemv_rows(Isa::scalar, ValueType::f16, w.data(), 2, 2, 1, 3, x.data(), 1, y.data()),
               std::invalid_argument);
}

INSTANTIATE_TEST_SUITE_P(AllPaths, HalfGemvPath, ::testing::Values(Isa::scalar, Isa::avx2, Isa::avx512),
                         [](const auto& info) { return std::string(to_string(info.param)); });

}  // namespace
