// Google Benchmark: read bandwidth against working-set size, one thread, to locate the cache a
// weight stops fitting in. The CPU's reported cache sizes can be a hypervisor's figure (the Zen 5
// VM of docs/benchmarks.md reports a 508 MiB L3), so `ressa bench gemv --cold` and the end-to-end
// claim "the weights do not fit in cache" rest on this measurement instead (docs/benchmarks.md
// "Cache size"). Run: build/ressa_bench --benchmark_filter=ReadBandwidth
#include <benchmark/benchmark.h>
#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <memory>

#include "ressa/sparse/kernels.h"

namespace {

// Sum of n floats (n a multiple of 64), four independent accumulators so that loads, not adds,
// limit it.
__attribute__((target("avx2"))) float sum_avx2(const float* a, size_t n) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
  for (size_t i = 0; i < n; i += 32) {
    s0 = _mm256_add_ps(s0, _mm256_load_ps(a + i));
    s1 = _mm256_add_ps(s1, _mm256_load_ps(a + i + 8));
    s2 = _mm256_add_ps(s2, _mm256_load_ps(a + i + 16));
    s3 = _mm256_add_ps(s3, _mm256_load_ps(a + i + 24));
  }
  alignas(32) float out[8];
  _mm256_store_ps(out, _mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
  return out[0] + out[1] + out[2] + out[3] + out[4] + out[5] + out[6] + out[7];
}

float sum_portable(const float* a, size_t n) {
  float s[8] = {};
  for (size_t i = 0; i < n; i += 8)
    for (int k = 0; k < 8; ++k) s[k] += a[i + k];
  return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

// state.range(0): working set in MiB, read once per iteration after one untimed pass.
void BM_ReadBandwidth(benchmark::State& state) {
  const size_t n = size_t(state.range(0)) << 18;  // floats
  std::unique_ptr<float, decltype(&std::free)> a(static_cast<float*>(std::aligned_alloc(64, n * sizeof(float))), &std::free);
  if (!a) {
    state.SkipWithError("out of memory");
    return;
  }
  for (size_t i = 0; i < n; ++i) a.get()[i] = 1.0f;
  const bool avx2 = ressa::sparse::detected_isa() >= ressa::sparse::Isa::avx2;  // the kernels' own detection
  float total = avx2 ? sum_avx2(a.get(), n) : sum_portable(a.get(), n);
  for (auto _ : state) {
    total += avx2 ? sum_avx2(a.get(), n) : sum_portable(a.get(), n);
    benchmark::DoNotOptimize(total);
  }
  state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(n * sizeof(float)));
  state.counters["MiB"] = double(state.range(0));
}
BENCHMARK(BM_ReadBandwidth)
    ->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->Arg(24)->Arg(32)->Arg(48)->Arg(64)->Arg(96)->Arg(128)->Arg(256)->Arg(512)
    ->Unit(benchmark::kMillisecond);

}  // namespace
