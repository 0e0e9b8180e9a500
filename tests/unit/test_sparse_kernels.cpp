// Tests for src/ressa/sparse/kernels: every dispatch path (scalar, AVX2, AVX-512) against the
// float64 dense reference on ragged shapes, batches 1..70, 1-3 threads; a path this CPU cannot
// run, or that RESSA_ISA rules out, is reported as skipped with the reason. Also the ISA choice
// from CPU features and the RESSA_ISA cap, on made-up feature sets.
#include "ressa/sparse/kernels.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <ostream>
#include <random>
#include <string>
#include <thread>
#include <vector>

using namespace ressa::sparse;

namespace ressa::sparse {
// gtest prints a path by its name (test lists, failure messages).
void PrintTo(Isa isa, std::ostream* os) { *os << to_string(isa); }
}  // namespace ressa::sparse

namespace {

std::vector<float> random_sparse(int64_t rows, int64_t cols, double density, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  std::bernoulli_distribution keep(density);
  std::vector<float> w(size_t(rows * cols));
  for (auto& v : w) v = keep(rng) ? val(rng) : 0.0f;
  if (rows >= 3)  // an all-zero row and a fully dense row
    for (int64_t c = 0; c < cols; ++c) w[size_t(c)] = 0.0f, w[size_t(2 * cols + c)] = val(rng) + 2.0f;
  return w;
}

// Exactly n zeros in each group of m (by magnitude), some groups with extra zeros.
std::vector<float> random_nm(int64_t rows, int64_t cols, int n, int m, uint32_t seed) {
  auto w = random_sparse(rows, cols, 0.95, seed);
  for (int64_t g = 0; g < rows * cols / m; ++g) {
    float* grp = w.data() + g * m;
    for (int z = 0; z < n; ++z) {
      int best = -1;
      for (int i = 0; i < m; ++i)
        if (grp[i] != 0.0f && (best < 0 || std::fabs(grp[i]) < std::fabs(grp[best]))) best = i;
      if (best >= 0) grp[best] = 0.0f;
    }
  }
  return w;
}

std::vector<float> random_x(int64_t batch, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> val(-1.0f, 1.0f);
  std::vector<float> x(size_t(batch * cols));
  for (auto& v : x) v = val(rng);
  return x;
}

// y (batch, rows) matches the float64 reference within float rounding of the dot product.
void expect_close(const std::vector<float>& w, int64_t rows, int64_t cols, const std::vector<float>& x,
                  int64_t batch, const std::vector<float>& y, const std::string& what) {
  std::vector<float> ref(size_t(batch * rows));
  dense_matmul_ref(w.data(), rows, cols, x.data(), batch, ref.data());
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < rows; ++r) {
      double scale = 0.0;
      for (int64_t c = 0; c < cols; ++c) scale += std::fabs(double(w[size_t(r * cols + c)]) * x[size_t(b * cols + c)]);
      const size_t i = size_t(b * rows + r);
      ASSERT_NEAR(y[i], ref[i], 1e-5 * scale + 1e-30) << what << " b=" << b << " r=" << r;
    }
}

class SparseKernels : public ::testing::Test {
 protected:
  void TearDown() override {
    set_force_scalar(false);
    set_parallel_runner(nullptr);
  }
};

// Why this process cannot test a path, or "" when it can.
std::string skip_reason(Isa isa) {
  const Isa cpu = best_isa(ressa::cpu_features());
  const std::string path = to_string(isa);
  if (cpu < isa) return "this CPU cannot run the " + path + " kernels (best: " + to_string(cpu) + ")";
  if (detected_isa() < isa) return std::string("RESSA_ISA=") + std::getenv("RESSA_ISA") + " rules out the " + path + " kernels";
  return "";
}

// One instance per dispatch path, the kernels capped at it (set_max_isa).
class SparseKernelPath : public SparseKernels, public ::testing::WithParamInterface<Isa> {
 protected:
  void SetUp() override {
    if (const std::string why = skip_reason(GetParam()); !why.empty()) {
      GTEST_SKIP() << why;
    }
    set_max_isa(GetParam());
    ASSERT_EQ(active_isa(), GetParam());
  }
};

const int64_t kBatches[] = {1, 2, 3, 5, 8, 9, 16, 17, 33, 64, 70};

}  // namespace

// Both value types: bf16 values are checked against the float64 product of the weights they
// hold (to_dense widens them exactly); the bf16 kernels work in 32-column steps, hence the
// shapes around 32 and 64 columns.
TEST_P(SparseKernelPath, BitmaskMatchesReference) {
  const Isa isa = GetParam();
  const std::pair<int64_t, int64_t> shapes[] = {{7, 13}, {33, 96}, {5, 8}, {3, 1}, {17, 130}, {40, 300},
                                                {9, 64}, {6, 97}, {4, 1000}};
  uint32_t seed = 1;
  for (ValueType vt : {ValueType::f32, ValueType::bf16, ValueType::f16}) {
    for (auto [rows, cols] : shapes)
      for (double density : {0.0, 0.05, 0.3, 0.7, 1.0}) {
        const auto bm = BitmaskMatrix::from_dense(random_sparse(rows, cols, density, seed++).data(), rows, cols, vt);
        ASSERT_EQ(bm.value_type(), vt);
        std::vector<float> w(size_t(rows * cols));
        bm.to_dense(w.data());
        for (int64_t batch : kBatches)
          for (int threads : {1, 2, 3}) {
            const auto x = random_x(batch, cols, seed++);
            std::vector<float> y(size_t(batch * rows), NAN);
            bitmask_matmul(bm, x.data(), batch, y.data(), threads);
            expect_close(w, rows, cols, x, batch, y,
                         std::string(to_string(vt)) + " " + to_string(isa) + " " + std::to_string(rows) + "x" + std::to_string(cols) +
                             " density " + std::to_string(density) + " batch " + std::to_string(batch) +
                             " threads " + std::to_string(threads));
            if (HasFatalFailure()) return;
          }
      }
  }
}

TEST_P(SparseKernelPath, NMMatchesReference) {
  const Isa isa = GetParam();
  const std::pair<int, int> patterns[] = {{2, 4}, {1, 4}, {3, 4}, {4, 8}, {1, 2}};
  uint32_t seed = 100;
  for (ValueType vt : {ValueType::f32, ValueType::bf16, ValueType::f16}) {
    for (auto [n, m] : patterns)
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{7, 8}, {33, 96}, {5, 72}, {9, 136}, {3, 264}}) {
        const auto nm = NMMatrix::from_dense(random_nm(rows, cols, n, m, seed++).data(), rows, cols, n, m, vt);
        ASSERT_EQ(nm.value_type(), vt);
        std::vector<float> w(size_t(rows * cols));
        nm.to_dense(w.data());
        for (int64_t batch : kBatches)
          for (int threads : {1, 2, 3}) {
            const auto x = random_x(batch, cols, seed++);
            std::vector<float> y(size_t(batch * rows), NAN);
            nm_matmul(nm, x.data(), batch, y.data(), threads);
            expect_close(w, rows, cols, x, batch, y,
                         std::string(to_string(vt)) + " " + to_string(isa) + " " + std::to_string(n) + ":" + std::to_string(m) + " " +
                             std::to_string(rows) + "x" + std::to_string(cols) + " batch " +
                             std::to_string(batch) + " threads " + std::to_string(threads));
            if (HasFatalFailure()) return;
          }
      }
  }
}

INSTANTIATE_TEST_SUITE_P(AllPaths, SparseKernelPath, ::testing::Values(Isa::scalar, Isa::avx2, Isa::avx512),
                         [](const ::testing::TestParamInfo<Isa>& info) { return std::string(to_string(info.param)); });

// Each row's result depends only on its own data, so any thread count gives the same bits; two
// callers at once, changing thread counts between calls, exercise the pool's hand-over.
// Results do not depend on the thread count, on concurrent callers, or on how the rows are cut
// into tasks: the small weights give one task per thread, the large ones several per thread
// (ragged, and for 2:4 not a multiple of the 4 rows a direct call takes).
TEST_F(SparseKernels, ThreadCountsAndConcurrentCallersGiveIdenticalResults) {
  for (const auto& [rb, rn] : {std::pair<int64_t, int64_t>{37, 29}, std::pair<int64_t, int64_t>{301, 203}}) {
    SCOPED_TRACE("rows " + std::to_string(rb) + " / " + std::to_string(rn));
    const auto wb = random_sparse(rb, 200, 0.3, 5);
    const auto wn = random_nm(rn, 136, 2, 4, 6);
    const auto bm = BitmaskMatrix::from_dense(wb.data(), rb, 200);
    const auto bh = BitmaskMatrix::from_dense(wb.data(), rb, 200, ValueType::bf16);
    std::vector<float> wh(wb.size());
    bh.to_dense(wh.data());
    const auto nm = NMMatrix::from_dense(wn.data(), rn, 136, 2, 4);
    const auto xb = random_x(5, 200, 7), xn = random_x(5, 136, 8);
    // Reference per batch size (the kernel, and so the summation order, depends on the batch).
    std::vector<std::vector<float>> want_b(6), want_h(6), want_n(6);
    for (int64_t batch = 1; batch <= 5; ++batch) {
      want_b[size_t(batch)].resize(size_t(batch * rb));
      want_h[size_t(batch)].resize(size_t(batch * rb));
      want_n[size_t(batch)].resize(size_t(batch * rn));
      bitmask_matmul(bm, xb.data(), batch, want_b[size_t(batch)].data(), 1);
      bitmask_matmul(bh, xb.data(), batch, want_h[size_t(batch)].data(), 1);
      nm_matmul(nm, xn.data(), batch, want_n[size_t(batch)].data(), 1);
      // The single-thread results themselves are right (float64 reference).
      expect_close(wb, rb, 200, xb, batch, want_b[size_t(batch)], "bitmask");
      expect_close(wh, rb, 200, xb, batch, want_h[size_t(batch)], "bitmask bf16");
      expect_close(wn, rn, 136, xn, batch, want_n[size_t(batch)], "2:4");
    }
    std::atomic<int> mismatches{0};
    const auto worker = [&](int seed) {
      std::vector<float> yb(size_t(5 * rb)), yh(size_t(5 * rb)), yn(size_t(5 * rn));
      for (int i = 0; i < 200; ++i) {
        const int t = 1 + (i + seed) % 4;
        const int64_t batch = 1 + (i % 5);
        bitmask_matmul(bm, xb.data(), batch, yb.data(), t);
        bitmask_matmul(bh, xb.data(), batch, yh.data(), t);
        nm_matmul(nm, xn.data(), batch, yn.data(), t);
        mismatches += std::memcmp(yb.data(), want_b[size_t(batch)].data(), size_t(batch * rb) * 4) != 0;
        mismatches += std::memcmp(yh.data(), want_h[size_t(batch)].data(), size_t(batch * rb) * 4) != 0;
        mismatches += std::memcmp(yn.data(), want_n[size_t(batch)].data(), size_t(batch * rn) * 4) != 0;
      }
    };
    std::thread a(worker, 0), b(worker, 1);
    a.join();
    b.join();
    EXPECT_EQ(mismatches.load(), 0);
  }
}

// A runner supplied by the caller (the torch layer installs torch's pool) gets the threads, is
// not consulted for one thread, and may run the bodies in any order or one after another; the
// results are the pool's, bit for bit. nullptr brings the pool back.
std::atomic<int> g_runner_calls{0}, g_runner_threads{0};
void threaded_runner(int threads, const std::function<void(int)>& body) {
  g_runner_calls++;
  g_runner_threads = threads;
  std::vector<std::thread> ts;
  for (int i = 1; i < threads; ++i) ts.emplace_back(body, i);
  body(0);
  for (auto& t : ts) t.join();
}
void serial_runner(int threads, const std::function<void(int)>& body) {
  g_runner_calls++;
  for (int i = threads - 1; i >= 0; --i) body(i);
}

TEST_F(SparseKernels, ParallelRunnerReplacesThePool) {
  const auto wb = random_sparse(301, 200, 0.3, 15);
  const auto wn = random_nm(203, 136, 2, 4, 16);
  const auto bm = BitmaskMatrix::from_dense(wb.data(), 301, 200);
  const auto nm = NMMatrix::from_dense(wn.data(), 203, 136, 2, 4);
  for (int64_t batch : {1, 5}) {
    const auto xb = random_x(batch, 200, 17), xn = random_x(batch, 136, 18);
    std::vector<float> want_b(size_t(batch * 301)), want_n(size_t(batch * 203));
    bitmask_matmul(bm, xb.data(), batch, want_b.data(), 3);
    nm_matmul(nm, xn.data(), batch, want_n.data(), 3);
    for (ParallelRunner runner : {threaded_runner, serial_runner}) {
      set_parallel_runner(runner);
      g_runner_calls = 0;
      std::vector<float> yb(want_b.size(), NAN), yn(want_n.size(), NAN);
      bitmask_matmul(bm, xb.data(), batch, yb.data(), 3);
      nm_matmul(nm, xn.data(), batch, yn.data(), 3);
      EXPECT_EQ(g_runner_calls.load(), 2);
      if (runner == threaded_runner) { EXPECT_EQ(g_runner_threads.load(), 3); }
      EXPECT_EQ(std::memcmp(yb.data(), want_b.data(), want_b.size() * 4), 0);
      EXPECT_EQ(std::memcmp(yn.data(), want_n.data(), want_n.size() * 4), 0);
      nm_matmul(nm, xn.data(), batch, yn.data(), 1);  // one thread: no runner
      EXPECT_EQ(g_runner_calls.load(), 2);
      EXPECT_EQ(std::memcmp(yn.data(), want_n.data(), want_n.size() * 4), 0);
    }
    set_parallel_runner(nullptr);
    g_runner_calls = 0;
    std::vector<float> yb(want_b.size(), NAN);
    bitmask_matmul(bm, xb.data(), batch, yb.data(), 3);
    EXPECT_EQ(g_runner_calls.load(), 0);
    EXPECT_EQ(std::memcmp(yb.data(), want_b.data(), want_b.size() * 4), 0);
  }
}

TEST_F(SparseKernels, ScalarSwitchAndBatchZero) {
  set_force_scalar(true);
  EXPECT_EQ(active_isa(), Isa::scalar);
  set_force_scalar(false);
  EXPECT_EQ(active_isa(), detected_isa());
  const auto w = random_sparse(4, 8, 0.5, 3);
  const auto bm = BitmaskMatrix::from_dense(w.data(), 4, 8);
  EXPECT_NO_THROW(bitmask_matmul(bm, nullptr, 0, nullptr, 1));
}

TEST_F(SparseKernels, RejectsBadCalls) {
  const auto w = random_nm(4, 8, 2, 4, 3);
  const auto bm = BitmaskMatrix::from_dense(w.data(), 4, 8);
  const auto nm = NMMatrix::from_dense(w.data(), 4, 8, 2, 4);
  std::vector<float> x(8), y(4);
  EXPECT_THROW(bitmask_matmul(bm, x.data(), 1, y.data(), 0), std::invalid_argument);
  EXPECT_THROW(bitmask_matmul(bm, x.data(), -1, y.data(), 1), std::invalid_argument);
  EXPECT_THROW(bitmask_matmul(bm, nullptr, 1, y.data(), 1), std::invalid_argument);
  EXPECT_THROW(nm_matmul(nm, x.data(), 1, nullptr, 1), std::invalid_argument);
  EXPECT_THROW(bitmask_matmul(BitmaskMatrix(), x.data(), 1, y.data(), 1), std::invalid_argument);
  EXPECT_THROW(nm_matmul(NMMatrix(), x.data(), 1, y.data(), 1), std::invalid_argument);
}

// ---- which path: CPU features and RESSA_ISA --------------------------------------------

namespace {

ressa::CpuFeatures avx2_cpu() {
  ressa::CpuFeatures f;
  f.avx2 = f.fma = f.f16c = f.popcnt = f.bmi = f.bmi2 = true;
  return f;
}

ressa::CpuFeatures avx512_cpu() {
  ressa::CpuFeatures f = avx2_cpu();
  f.avx512f = f.avx512bw = f.avx512vl = f.avx512dq = f.avx512cd = f.avx512vbmi2 = true;
  return f;
}

// The message of the std::invalid_argument that isa_limit throws, or "<no throw>".
std::string limit_error(const char* ressa_isa, const ressa::CpuFeatures& cpu) {
  try {
    isa_limit(ressa_isa, cpu);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "<no throw>";
}

TEST(KernelIsa, NamesRoundTrip) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    EXPECT_EQ(parse_isa(to_string(isa)), isa);
  }
  EXPECT_THROW(parse_isa("AVX2"), std::invalid_argument);
  EXPECT_THROW(parse_isa("sse4"), std::invalid_argument);
  EXPECT_THROW(parse_isa(""), std::invalid_argument);
}

// avx2 needs each of AVX2, FMA, F16C, POPCNT, BMI1, BMI2; avx512 needs them and AVX-512F.
TEST(KernelIsa, BestPathFromFeatures) {
  EXPECT_EQ(best_isa(ressa::CpuFeatures{}), Isa::scalar);
  EXPECT_EQ(best_isa(avx2_cpu()), Isa::avx2);
  EXPECT_EQ(best_isa(avx512_cpu()), Isa::avx512);
  ressa::CpuFeatures f_only = avx2_cpu();
  f_only.avx512f = true;  // the other AVX-512 subsets are not needed
  EXPECT_EQ(best_isa(f_only), Isa::avx512);
  using F = ressa::CpuFeatures;
  for (bool F::*need : {&F::avx2, &F::fma, &F::f16c, &F::popcnt, &F::bmi, &F::bmi2}) {
    ressa::CpuFeatures f = avx512_cpu();
    f.*need = false;
    EXPECT_EQ(best_isa(f), Isa::scalar);
  }
  ressa::CpuFeatures no_f = avx512_cpu();
  no_f.avx512f = false;
  EXPECT_EQ(best_isa(no_f), Isa::avx2);
}

TEST(KernelIsa, RessaIsaCapsTheDispatch) {
  // Not set (or empty): the CPU's best.
  EXPECT_EQ(isa_limit(nullptr, avx512_cpu()), Isa::avx512);
  EXPECT_EQ(isa_limit("", avx2_cpu()), Isa::avx2);
  EXPECT_EQ(isa_limit(nullptr, ressa::CpuFeatures{}), Isa::scalar);
  // Any path the CPU runs.
  EXPECT_EQ(isa_limit("scalar", avx512_cpu()), Isa::scalar);
  EXPECT_EQ(isa_limit("avx2", avx512_cpu()), Isa::avx2);
  EXPECT_EQ(isa_limit("avx512", avx512_cpu()), Isa::avx512);
  EXPECT_EQ(isa_limit("scalar", ressa::CpuFeatures{}), Isa::scalar);
}

// A path the CPU cannot run, or an unknown name, is an error that names the variable, the value
// and what the CPU runs (and lacks), never a silent fallback.
TEST(KernelIsa, RessaIsaBeyondTheCpuIsAnError) {
  const std::string beyond = limit_error("avx512", avx2_cpu());
  EXPECT_NE(beyond.find("RESSA_ISA=avx512"), std::string::npos) << beyond;
  EXPECT_NE(beyond.find("up to avx2"), std::string::npos) << beyond;
  EXPECT_NE(beyond.find("avx512f"), std::string::npos) << beyond;
  ressa::CpuFeatures no_bmi2 = avx2_cpu();
  no_bmi2.bmi2 = false;
  const std::string old_cpu = limit_error("avx2", no_bmi2);
  EXPECT_NE(old_cpu.find("RESSA_ISA=avx2"), std::string::npos) << old_cpu;
  EXPECT_NE(old_cpu.find("up to scalar"), std::string::npos) << old_cpu;
  EXPECT_NE(old_cpu.find("bmi2"), std::string::npos) << old_cpu;
  const std::string unknown = limit_error("AVX-512", avx512_cpu());
  EXPECT_NE(unknown.find("RESSA_ISA=AVX-512"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("scalar, avx2 or avx512"), std::string::npos) << unknown;
  EXPECT_EQ(limit_error("avx512", avx512_cpu()), "<no throw>");
}

// The process's dispatch comes from this CPU's features and its RESSA_ISA (CTest runs the
// suite without it; `RESSA_ISA=avx2 test_sparse_kernels` checks the cap end to end).
TEST(KernelIsa, DetectedIsaIsTheLimitForThisProcess) {
  EXPECT_EQ(detected_isa(), isa_limit(std::getenv("RESSA_ISA"), ressa::cpu_features()));
  EXPECT_LE(detected_isa(), best_isa(ressa::cpu_features()));
}

}  // namespace
