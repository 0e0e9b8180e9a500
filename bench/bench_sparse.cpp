// Google Benchmark: sparse kernels (bitmask 70% / 90%, 2:4) vs dense fp32 y = x W^T at LLaMA-7B
// layer shapes (4096x4096, 11008x4096), batch 1 and 16, 1 and 2 threads. Dense baselines:
// OpenBLAS (dlopen("libopenblas.so.0"), skipped if absent) and a small AVX2 kernel below.
// Counter "GB/s": bytes of weights + x + y per call / time. bench/speedups.py turns the JSON
// output into the table in docs/kernels.md.
#include <benchmark/benchmark.h>
#include <dlfcn.h>
#include <immintrin.h>

#include <functional>
#include <map>
#include <string>
#include <memory>
#include <random>
#include <thread>
#include <tuple>
#include <vector>

#include "ressa/sparse/kernels.h"

using namespace ressa::sparse;

namespace {

// ---- weights (cached per shape) -----------------------------------------------------------

struct Weights {
  std::vector<float> dense;
  std::unique_ptr<BitmaskMatrix> bm70, bm90, bm70_bf16;
  std::unique_ptr<NMMatrix> nm24;
};

// Gaussian W (rows, 4096) and its sparse versions (random masks: what magnitude pruning of
// i.i.d. weights gives).
const Weights& weights(int64_t rows) {
  static std::map<int64_t, Weights> cache;
  auto it = cache.find(rows);
  if (it != cache.end()) return it->second;
  const int64_t cols = 4096;
  Weights& w = cache[rows];
  std::mt19937 rng{uint32_t(rows)};
  std::normal_distribution<float> val(0.0f, 0.02f);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  w.dense.resize(size_t(rows * cols));
  for (auto& v : w.dense) v = val(rng);
  std::vector<float> s(w.dense.size());
  for (double sparsity : {0.7, 0.9}) {
    for (size_t i = 0; i < s.size(); ++i) s[i] = u(rng) < sparsity ? 0.0f : w.dense[i];
    (sparsity < 0.8 ? w.bm70 : w.bm90) = std::make_unique<BitmaskMatrix>(BitmaskMatrix::from_dense(s.data(), rows, cols));
    if (sparsity < 0.8)
      w.bm70_bf16 = std::make_unique<BitmaskMatrix>(BitmaskMatrix::from_dense(s.data(), rows, cols, ValueType::bf16));
  }
  s = w.dense;
  for (size_t g = 0; g < s.size(); g += 4) {
    int a = int(rng() % 4), b = int(rng() % 3);
    b += b >= a;
    s[g + size_t(a)] = s[g + size_t(b)] = 0.0f;
  }
  w.nm24 = std::make_unique<NMMatrix>(NMMatrix::from_dense(s.data(), rows, cols, 2, 4));
  return w;
}

std::vector<float> activations(int64_t batch) {
  std::vector<float> x(size_t(batch * 4096));
  std::mt19937 rng(7);
  std::normal_distribution<float> val(0.0f, 1.0f);
  for (auto& v : x) v = val(rng);
  return x;
}

// ---- dense baselines ----------------------------------------------------------------------

// OpenBLAS entry points, resolved at run time so that the build needs no BLAS headers.
// OpenBLAS 0.3.21 (Debian 12) does not recognise this Xeon (model 207) and falls back to its SSE3
// "Prescott" kernels; run with OPENBLAS_CORETYPE=SkylakeX for an AVX-512 baseline. The core it
// picked is printed in the benchmark context ("openblas_core").
struct OpenBlas {
  using Sgemv = void (*)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
  using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float,
                         float*, int);
  Sgemv sgemv = nullptr;
  Sgemm sgemm = nullptr;
  void (*set_threads)(int) = nullptr;
  const char* (*corename)() = nullptr;
  static const OpenBlas& get() {
    static const OpenBlas blas = [] {
      OpenBlas b;
      if (void* h = dlopen("libopenblas.so.0", RTLD_NOW | RTLD_LOCAL)) {
        b.sgemv = reinterpret_cast<Sgemv>(dlsym(h, "cblas_sgemv"));
        b.sgemm = reinterpret_cast<Sgemm>(dlsym(h, "cblas_sgemm"));
        b.set_threads = reinterpret_cast<void (*)(int)>(dlsym(h, "openblas_set_num_threads"));
        b.corename = reinterpret_cast<const char* (*)()>(dlsym(h, "openblas_get_corename"));
      }
      return b;
    }();
    return blas;
  }
};
const int kContext = [] {
  const OpenBlas& b = OpenBlas::get();
  benchmark::AddCustomContext("openblas_core", b.corename ? b.corename() : "not found");
  benchmark::AddCustomContext("sparse_isa", to_string(detected_isa()));
  return 0;
}();
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

// y (batch, rows) = x (batch, cols) W^T for rows [r0, r1); cols % 8 == 0. Blocks of 4 weight
// rows x 2 batch rows: 8 accumulators, each weight vector loaded once per 2 batch rows.
__attribute__((target("avx2,fma"))) void dense_avx2_rows(const float* w, int64_t rows, int64_t cols,
                                                         const float* x, int64_t batch, float* y,
                                                         int64_t r0, int64_t r1) {
  for (int64_t r = r0; r < r1; r += 4) {
    const int64_t nr = std::min<int64_t>(4, r1 - r);
    for (int64_t b = 0; b < batch; b += 2) {
      const int64_t nb = std::min<int64_t>(2, batch - b);
      __m256 acc[4][2] = {};
      for (int64_t c = 0; c < cols; c += 8) {
        const __m256 x0 = _mm256_loadu_ps(x + b * cols + c);
        const __m256 x1 = nb > 1 ? _mm256_loadu_ps(x + (b + 1) * cols + c) : x0;
        for (int i = 0; i < 4; ++i) {
          const __m256 wv = _mm256_loadu_ps(w + (r + (i < nr ? i : 0)) * cols + c);
          acc[i][0] = _mm256_fmadd_ps(wv, x0, acc[i][0]);
          acc[i][1] = _mm256_fmadd_ps(wv, x1, acc[i][1]);
        }
      }
      for (int i = 0; i < nr; ++i)
        for (int j = 0; j < nb; ++j) {
          alignas(32) float t[8];
          _mm256_store_ps(t, acc[i][j]);
          y[(b + j) * rows + r + i] = ((t[0] + t[1]) + (t[2] + t[3])) + ((t[4] + t[5]) + (t[6] + t[7]));
        }
    }
  }
}

void dense_avx2(const float* w, int64_t rows, int64_t cols, const float* x, int64_t batch, float* y,
                int threads) {
  std::vector<std::thread> pool;
  const int64_t per = (rows / threads + 3) / 4 * 4;
  for (int t = 1; t < threads; ++t)
    pool.emplace_back(dense_avx2_rows, w, rows, cols, x, batch, y, std::min(rows, t * per),
                      std::min(rows, (t + 1) * per));
  dense_avx2_rows(w, rows, cols, x, batch, y, 0, std::min(rows, per));
  for (auto& t : pool) t.join();
}

// ---- benchmarks: args (rows, batch, threads[, isa]) ---------------------------------------

void report(benchmark::State& state, size_t weight_bytes, int64_t rows, int64_t batch) {
  const double bytes = double(weight_bytes) + double(batch) * double(rows + 4096) * 4.0;
  state.counters["GB/s"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["bytes"] = bytes;
}

void BM_dense_openblas(benchmark::State& state, bool gemv) {
  const OpenBlas& blas = OpenBlas::get();
  if (!blas.sgemm || !blas.sgemv || !blas.set_threads) return state.SkipWithError("libopenblas.so.0 not found");
  const int64_t rows = state.range(0), batch = state.range(1), cols = 4096;
  blas.set_threads(int(state.range(2)));
  const Weights& w = weights(rows);
  const auto x = activations(batch);
  std::vector<float> y(size_t(batch * rows));
  for (auto _ : state) {
    if (gemv)
      blas.sgemv(kRowMajor, kNoTrans, int(rows), int(cols), 1.0f, w.dense.data(), int(cols), x.data(), 1, 0.0f,
                 y.data(), 1);
    else
      blas.sgemm(kRowMajor, kNoTrans, kTrans, int(batch), int(rows), int(cols), 1.0f, x.data(), int(cols),
                 w.dense.data(), int(cols), 0.0f, y.data(), int(rows));
    benchmark::DoNotOptimize(y.data());
  }
  blas.set_threads(1);
  report(state, w.dense.size() * 4, rows, batch);
}

void BM_dense_avx2(benchmark::State& state) {
  const int64_t rows = state.range(0), batch = state.range(1);
  const Weights& w = weights(rows);
  const auto x = activations(batch);
  std::vector<float> y(size_t(batch * rows));
  for (auto _ : state) {
    dense_avx2(w.dense.data(), rows, 4096, x.data(), batch, y.data(), int(state.range(2)));
    benchmark::DoNotOptimize(y.data());
  }
  report(state, w.dense.size() * 4, rows, batch);
}

template <class Pick>
void BM_sparse(benchmark::State& state, Pick pick) {
  const int64_t rows = state.range(0), batch = state.range(1);
  const int threads = int(state.range(2));
  const Isa isa = Isa(state.range(3));
  if (detected_isa() < isa) return state.SkipWithError("ISA not supported on this CPU");
  set_max_isa(isa);
  const Weights& w = weights(rows);
  const auto x = activations(batch);
  std::vector<float> y(size_t(batch * rows));
  size_t bytes = 0;
  for (auto _ : state) {
    bytes = pick(w, x.data(), batch, y.data(), threads);
    benchmark::DoNotOptimize(y.data());
  }
  set_max_isa(Isa::avx512);
  report(state, bytes, rows, batch);
}

size_t run_bm70(const Weights& w, const float* x, int64_t b, float* y, int t) {
  bitmask_matmul(*w.bm70, x, b, y, t);
  return w.bm70->bytes();
}
size_t run_bm70_bf16(const Weights& w, const float* x, int64_t b, float* y, int t) {
  bitmask_matmul(*w.bm70_bf16, x, b, y, t);
  return w.bm70_bf16->bytes();
}
size_t run_bm90(const Weights& w, const float* x, int64_t b, float* y, int t) {
  bitmask_matmul(*w.bm90, x, b, y, t);
  return w.bm90->bytes();
}
size_t run_nm24(const Weights& w, const float* x, int64_t b, float* y, int t) {
  nm_matmul(*w.nm24, x, b, y, t);
  return w.nm24->bytes();
}

// Args (rows, batch, threads[, isa]). One thread: CPU time of the calling thread (robust on a
// shared machine; every kernel here runs on the caller at threads = 1). Two threads: wall time.
const int kRegistered = [] {
  using Fn = std::function<void(benchmark::State&)>;
  const std::pair<const char*, Fn> kernels[] = {
      {"BM_sparse/bitmask70", [](benchmark::State& s) { BM_sparse(s, run_bm70); }},
      {"BM_sparse/bitmask70_bf16", [](benchmark::State& s) { BM_sparse(s, run_bm70_bf16); }},
      {"BM_sparse/bitmask90", [](benchmark::State& s) { BM_sparse(s, run_bm90); }},
      {"BM_sparse/nm24", [](benchmark::State& s) { BM_sparse(s, run_nm24); }},
      {"BM_dense_avx2", BM_dense_avx2},
      {"BM_dense_openblas/sgemm", [](benchmark::State& s) { BM_dense_openblas(s, false); }},
      {"BM_dense_openblas/sgemv", [](benchmark::State& s) { BM_dense_openblas(s, true); }}};
  for (const auto& [name, fn] : kernels) {
    const bool sparse = std::string(name).rfind("BM_sparse", 0) == 0;
    const bool gemv = std::string(name).find("sgemv") != std::string::npos;
    for (int64_t threads : {1, 2}) {
      auto* b = benchmark::RegisterBenchmark(name, fn)->Unit(benchmark::kMicrosecond);
      if (threads > 1) b->UseRealTime();
      for (int64_t rows : {4096, 11008})
        for (int64_t batch : {1, 16}) {
          if (gemv && batch > 1) continue;
          if (!sparse) b->Args({rows, batch, threads});
          else
            for (Isa isa : {Isa::avx2, Isa::avx512}) b->Args({rows, batch, threads, int64_t(isa)});
        }
    }
  }
  return 0;
}();

}  // namespace
