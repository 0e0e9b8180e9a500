// Sparse x dense kernels (y = x W^T) for BitmaskMatrix and NMMatrix with runtime ISA dispatch.
// Three kernel kinds, picked per call by a cost model (docs/kernels.md explains the numbers):
//   direct bitmask (AVX2/AVX-512, small batch): expand each 8/16-column mask chunk's kept values
//           into a dense vector (table + vpermps, or vexpandps) and FMA it with every batch row
//           of x, so one weight load serves the batch block.
//   direct 2:4 (AVX2/AVX-512, small and medium batch): gather x at the kept positions with
//           vpermps / vpermt2ps and FMA with the contiguous values, 4 weight rows at a time.
//   index   (all ISAs, any format, larger batch): decode a row's kept column indices, then per
//           kept weight broadcast it and FMA with x^T[col, 0:batch] (x transposed once per
//           call), so work scales with nnz instead of cols.
// 16-bit values (ValueType::bf16: a shift; ValueType::f16: F16C's vcvtph2ps) are widened to
// fp32 in registers (direct kernels; the AVX-512 bitmask one expands bf16 32 at a time with
// vpexpandw) or per row into a buffer (index kernel, and the AVX-512 bitmask path for f16, which
// then runs the fp32 kernel); all arithmetic is fp32.
#include "ressa/sparse/kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "ressa/core/error.h"

// GCC 12 warns about the self-initialised _mm512_undefined_*() inside its own AVX-512 headers
// (GCC bug 105593, fixed in 13); the warning is spurious. It is silenced only around the code
// that uses AVX-512 intrinsics (RESSA_AVX512_BEGIN ... RESSA_AVX512_END).
#if defined(__GNUC__) && !defined(__clang__)
#define RESSA_AVX512_BEGIN                                          \
  _Pragma("GCC diagnostic push") _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") \
      _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#define RESSA_AVX512_END _Pragma("GCC diagnostic pop")
#else
#define RESSA_AVX512_BEGIN
#define RESSA_AVX512_END
#endif

#define RESSA_AVX2 __attribute__((target("avx2,fma,f16c,popcnt,bmi,bmi2")))
#define RESSA_AVX512 __attribute__((target("avx512f,avx2,fma,f16c,popcnt,bmi,bmi2")))
#define RESSA_AVX512_VBMI2 __attribute__((target("avx512f,avx512bw,avx512vbmi2,avx2,fma,f16c,popcnt,bmi,bmi2")))
#define RESSA_INLINE inline __attribute__((always_inline))

namespace ressa::sparse {
namespace {

// ---- dispatch -----------------------------------------------------------------------------

std::atomic<int> g_max_isa{int(Isa::avx512)};

// vpexpandw (the 16-bit-value bitmask kernels) is AVX512_VBMI2 (Ice Lake and later, Zen 4).
bool has_vbmi2() { return cpu_features().avx512vbmi2 && cpu_features().avx512bw; }

// The features a path needs (the target attributes above) that cpu lacks, e.g. " avx512f"; ""
// when cpu runs the path.
std::string missing_features(Isa isa, const CpuFeatures& cpu) {
  if (isa == Isa::scalar) return "";
  const std::pair<bool, const char*> need[] = {{cpu.avx2, "avx2"},     {cpu.fma, "fma"}, {cpu.f16c, "f16c"},
                                               {cpu.popcnt, "popcnt"}, {cpu.bmi, "bmi"}, {cpu.bmi2, "bmi2"},
                                               {isa != Isa::avx512 || cpu.avx512f, "avx512f"}};
  std::string out;
  for (const auto& [has, name] : need)
    if (!has) out += std::string(" ") + name;
  return out;
}

int lanes(Isa isa) { return isa == Isa::avx512 ? 16 : isa == Isa::avx2 ? 8 : 1; }

// ---- thread pool --------------------------------------------------------------------------

std::atomic<ParallelRunner> g_runner{nullptr};

// Persistent workers so that a ~1 ms matmul does not pay thread start-up on every call.
class Pool {
 public:
  static Pool& get() {
    static Pool pool;
    return pool;
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
  }
  // Runs fn(i) for i in [0, tasks) on the caller plus threads - 1 workers, each taking the next
  // unclaimed task, and returns when all are done. fn must not throw. Concurrent callers take turns.
  void run(int tasks, int threads, const std::function<void(int)>& fn) {
    threads = std::min(threads, tasks);
    if (threads <= 1) {
      for (int i = 0; i < tasks; ++i) fn(i);
      return;
    }
    if (ParallelRunner runner = g_runner.load(std::memory_order_acquire)) {
      Job job;
      job.fn = &fn;
      job.n = tasks;
      runner(threads, [&job](int) { work(job); });
      return;
    }
    std::lock_guard<std::mutex> turn(run_mu_);
    while (int(workers_.size()) < threads - 1) workers_.emplace_back([this, g = gen_.load()] { loop(g); });
    // Each call gets its own counters: a worker still finishing an earlier call can only see
    // that call's exhausted counter, never claim a task of this one. Workers beyond this call's
    // thread count (from an earlier, wider call) stay out.
    auto job = std::make_shared<Job>();
    job->fn = &fn;
    job->n = tasks;
    job->seats = threads - 1;
    {
      std::lock_guard<std::mutex> lk(mu_);
      job_ = job;
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    work(*job);
    while (job->done.load(std::memory_order_acquire) < tasks) std::this_thread::yield();
  }

 private:
  struct Job {
    const std::function<void(int)>* fn = nullptr;
    int n = 0;
    std::atomic<int> next{0}, done{0}, seats{0};
  };
  static void work(Job& job) {
    for (int i; (i = job.next.fetch_add(1)) < job.n;) {
      (*job.fn)(i);
      job.done.fetch_add(1, std::memory_order_release);
    }
  }
  void loop(uint64_t seen) {
    for (;;) {
      // Spin briefly (back-to-back calls are common), then sleep.
      for (int i = 0; i < 20000 && gen_.load(std::memory_order_acquire) == seen; ++i) _mm_pause();
      std::shared_ptr<Job> job;
      {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_.load() != seen; });
        seen = gen_.load();
        if (stop_) return;
        job = job_;
      }
      if (job->seats.fetch_sub(1) > 0) work(*job);
    }
  }
  std::mutex run_mu_, mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> gen_{0};
  std::shared_ptr<Job> job_;  // the latest call's job (guarded by mu_)
  bool stop_ = false;
};

// ---- lookup tables ------------------------------------------------------------------------

struct alignas(64) ExpandEntry {
  int32_t idx[8];   // lane l of a kept column takes loaded value popcnt(m & ((1<<l)-1))
  int32_t keep[8];  // all ones in the kept lanes: zeroes what the permute put elsewhere
};

struct Luts {
  ExpandEntry expand[256];               // mask byte -> expand permutation + lane mask
  alignas(32) int32_t compress[256][8];  // mask byte -> indices of set bits, ascending
  alignas(32) int32_t prefix[9][8];      // p -> lanes < p all ones (maskload mask)
  alignas(16) int32_t nm24[256][4];      // byte of four 2-bit positions -> [p0, p1, 4+p2, 4+p3]
  constexpr Luts() : expand(), compress(), prefix(), nm24() {
    for (int m = 0; m < 256; ++m) {
      int k = 0;
      for (int l = 0; l < 8; ++l) {
        const bool kept = (m >> l) & 1;
        expand[m].idx[l] = kept ? k : 0;
        expand[m].keep[l] = kept ? -1 : 0;
        if (kept) compress[m][k++] = l;
      }
      for (int q = 0; q < 4; ++q) nm24[m][q] = ((m >> (2 * q)) & 3) + (q >= 2 ? 4 : 0);
    }
    for (int p = 0; p <= 8; ++p)
      for (int l = 0; l < 8; ++l) prefix[p][l] = l < p ? -1 : 0;
  }
};
constexpr Luts kLut{};

// Up to 8 bytes p[0, n) as a little-endian integer (row tails; no variable-length memcpy,
// which would also stall store forwarding).
RESSA_INLINE uint64_t load_bytes(const uint8_t* p, int64_t n) {
  uint64_t v = 0;
  for (int64_t i = std::min<int64_t>(n, 8) - 1; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

template <class T>
RESSA_INLINE T load_as(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

// Weight rows a direct kernel walks together (2:4; bitmask rows go one at a time): one weight
// stream reaches only ~55% of the DRAM bandwidth that four concurrent streams get on one core,
// and each x load serves all of them. The bitmask kernel is faster alone with software
// prefetch kPrefetchFloats ahead (measured; docs/kernels.md).
constexpr int kRows = 4;
constexpr int64_t kPrefetchFloats = 1024;
struct DirectRows {
  const uint8_t* meta[kRows];     // bitmask rows or 2:4 position rows
  const float* vals[kRows];       // their values (fp32 formats)
  const uint16_t* vals16[kRows];  // their values (16-bit formats)
};

// ---- scalar -------------------------------------------------------------------------------

// Kept column indices of a bitmask row [ceil(cols/8) bytes] into idx; returns their count.
int64_t decode_bitmask_scalar(const uint8_t* mrow, int64_t cols, int32_t* idx) {
  const int64_t nbytes = (cols + 7) / 8;
  int64_t n = 0;
  for (int64_t b0 = 0; b0 < nbytes; b0 += 8) {
    uint64_t word = nbytes - b0 >= 8 ? load_as<uint64_t>(mrow + b0) : load_bytes(mrow + b0, nbytes - b0);
    for (; word; word &= word - 1) idx[n++] = int32_t(b0 * 8 + __builtin_ctzll(word));
  }
  return n;
}

// out[0:bp] = sum_j v[j] * xt[idx[j], 0:bp]; xt is (cols, bp).
void index_row_scalar(const float* v, const int32_t* idx, int64_t nnz, const float* xt, int bp,
                      float* out) {
  std::fill(out, out + bp, 0.0f);
  for (int64_t j = 0; j < nnz; ++j) {
    const float* xr = xt + int64_t(idx[j]) * bp;
    for (int b = 0; b < bp; ++b) out[b] += v[j] * xr[b];
  }
}

// Which 16-bit value type a kernel widens (template tags; the pointer is uint16_t for both).
struct Bf16 {};
struct F16 {};
template <class V>
using Stored = std::conditional_t<std::is_same_v<V, float>, float, uint16_t>;

// 16-bit bits -> fp32: bf16 is the high half of the fp32 pattern; f16 per IEEE (formats.h).
RESSA_INLINE void widen_half_scalar(ValueType t, const uint16_t* v, int64_t n, float* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = from_half(t, v[j]);
}

// ---- AVX2 ---------------------------------------------------------------------------------

// 8 16-bit values at v as fp32.
template <class V>
RESSA_AVX2 RESSA_INLINE __m256 widen8(const uint16_t* v) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(v));
  if constexpr (std::is_same_v<V, F16>) return _mm256_cvtph_ps(h);
  else return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

template <class V>
RESSA_AVX2 void widen_half_avx2(const uint16_t* v, int64_t n, float* out) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(out + j, widen8<V>(v + j));
  widen_half_scalar(std::is_same_v<V, F16> ? ValueType::f16 : ValueType::bf16, v + j, n - j, out + j);
}

RESSA_AVX512_BEGIN
RESSA_AVX512 void widen_f16_avx512(const uint16_t* v, int64_t n, float* out) {
  int64_t j = 0;
  for (; j + 16 <= n; j += 16)
    _mm512_storeu_ps(out + j, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(v + j))));
  widen_half_avx2<F16>(v + j, n - j, out + j);
}

// n 16-bit values of type t widened into out (the index kernel's per-row buffer).
void widen_half(Isa isa, ValueType t, const uint16_t* v, int64_t n, float* out) {
  if (isa == Isa::scalar) widen_half_scalar(t, v, n, out);
  else if (t == ValueType::f16 && isa == Isa::avx512) widen_f16_avx512(v, n, out);
  else if (t == ValueType::f16) widen_half_avx2<F16>(v, n, out);
  else widen_half_avx2<Bf16>(v, n, out);
}

RESSA_AVX2 int64_t decode_bitmask_avx2(const uint8_t* mrow, int64_t cols, int32_t* idx) {
  int64_t n = 0;
  for (int64_t i = 0; i < (cols + 7) / 8; ++i) {
    const unsigned m = mrow[i];
    const __m256i ids = _mm256_add_epi32(
        _mm256_set1_epi32(int32_t(8 * i)),
        _mm256_load_si256(reinterpret_cast<const __m256i*>(kLut.compress[m])));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + n), ids);  // idx has 16 spare slots
    n += __builtin_popcount(m);
  }
  return n;
}

// Column indices of a 2:4 row's values from its nbytes position bytes (4 values per byte).
RESSA_AVX2 void decode_nm24_avx2(const uint8_t* prow, int64_t nbytes, int32_t* idx) {
  for (int64_t i = 0; i < nbytes; ++i)
    _mm_storeu_si128(reinterpret_cast<__m128i*>(idx + 4 * i),
                     _mm_add_epi32(_mm_set1_epi32(int32_t(8 * i)),
                                   _mm_load_si128(reinterpret_cast<const __m128i*>(kLut.nm24[prow[i]]))));
}

// Lanes < k all ones (k clamped to [0, 8]), a maskload mask.
RESSA_AVX2 RESSA_INLINE __m256i pre(int64_t k) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kLut.prefix[std::clamp<int64_t>(k, 0, 8)]));
}

RESSA_AVX2 RESSA_INLINE float hsum256(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// The 8 weights of a bitmask chunk (mask byte m) as a dense vector; v advances past its values.
// Exact reads only popcnt(m) values; otherwise 8 (the caller checked that they exist).
// 16-bit values: 8 are widened (the format pads its values so that the load may run past them).
template <bool Exact, class V>
RESSA_AVX2 RESSA_INLINE __m256 load8(const Stored<V>* v, int pc) {
  if constexpr (std::is_same_v<V, float>) return Exact ? _mm256_maskload_ps(v, pre(pc)) : _mm256_loadu_ps(v);
  else return widen8<V>(v);
}
template <bool Exact, class V>
RESSA_AVX2 RESSA_INLINE __m256 expand8(unsigned m, const Stored<V>*& v) {
  const int pc = __builtin_popcount(m);
  const ExpandEntry& e = kLut.expand[m];
  const __m256 raw = load8<Exact, V>(v, pc);
  v += pc;
  return _mm256_and_ps(_mm256_permutevar8x32_ps(raw, _mm256_load_si256(reinterpret_cast<const __m256i*>(e.idx))),
                       _mm256_load_ps(reinterpret_cast<const float*>(e.keep)));
}

// Direct kernel, bitmask: out[i*NB + b] = dot(row i, x[b*xs : b*xs+cols]) for R rows, NB batch
// rows; a step covers 32 columns (4 mask bytes) of every row, with an accumulator set per chunk
// when R * NB alone would leave the FMAs waiting on each other.
template <class V, int R, int NB, bool Exact>
struct BitmaskAvx2T {
  static constexpr int S = R * NB >= 4 ? 1 : 4;  // accumulator sets
  RESSA_AVX2 static void run(const DirectRows& rows, int64_t cols, const float* x, int64_t xs, float* out) {
    __m256 acc[S][R][NB];
    const Stored<V>* v[R];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      if constexpr (std::is_same_v<V, float>) v[i] = rows.vals[i];
      else v[i] = rows.vals16[i];
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) acc[s][i][b] = _mm256_setzero_ps();
    }
    int64_t c = 0;
    for (; c + 32 <= cols; c += 32)
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        _mm_prefetch(reinterpret_cast<const char*>(v[i]) + 4 * kPrefetchFloats, _MM_HINT_T0);
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k) {
          const __m256 w = expand8<Exact, V>(rows.meta[i][c / 8 + k], v[i]);
#pragma GCC unroll 4
          for (int b = 0; b < NB; ++b)
            acc[k % S][i][b] = _mm256_fmadd_ps(w, _mm256_loadu_ps(x + b * xs + c + 8 * k), acc[k % S][i][b]);
        }
      }
    for (; c < cols; c += 8) {  // padding bits are zero: only x needs masking
      const __m256i xm = pre(cols - c);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const __m256 w = expand8<std::is_same_v<V, float>, V>(rows.meta[i][c / 8], v[i]);
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b)
          acc[0][i][b] = _mm256_fmadd_ps(w, _mm256_maskload_ps(x + b * xs + c, xm), acc[0][i][b]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
#pragma GCC unroll 4
        for (int s = 1; s < S; ++s) acc[0][i][b] = _mm256_add_ps(acc[0][i][b], acc[s][i][b]);
        out[i * NB + b] = hsum256(acc[0][i][b]);
      }
  }
};

template <int R, int NB, bool Exact>
using BitmaskAvx2 = BitmaskAvx2T<float, R, NB, Exact>;
template <int R, int NB, bool Exact>
using BitmaskBf16Avx2 = BitmaskAvx2T<Bf16, R, NB, Exact>;
template <int R, int NB, bool Exact>
using BitmaskF16Avx2 = BitmaskAvx2T<F16, R, NB, Exact>;

// Direct kernel, 2:4: as above; per 16 columns (4 groups, 8 values, 2 position bytes) x is
// gathered at the kept positions with two vpermps and a blend.
template <class V, int R, int NB, bool>
struct Nm24Avx2T {
  RESSA_AVX2 static void run(const DirectRows& rows, int64_t cols, const float* x, int64_t xs, float* out) {
    __m256 acc[R][NB];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[i][b] = _mm256_setzero_ps();
    for (int64_t c = 0; c < cols; c += 16) {
      const int64_t rem = std::min<int64_t>(16, cols - c);  // a multiple of 4
      const bool tail = rem < 16;
      __m256 lo[NB], hi[NB];
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
        const float* xb = x + b * xs + c;
        lo[b] = tail ? _mm256_maskload_ps(xb, pre(rem)) : _mm256_loadu_ps(xb);
        hi[b] = tail ? _mm256_maskload_ps(xb + 8, pre(rem - 8)) : _mm256_loadu_ps(xb + 8);
      }
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const uint8_t* pp = rows.meta[i] + c / 8;
        const unsigned p = tail ? unsigned(load_bytes(pp, (rem + 7) / 8)) : load_as<uint16_t>(pp);
        const __m256i idx = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kLut.nm24[p & 255]))),
            _mm_load_si128(reinterpret_cast<const __m128i*>(kLut.nm24[p >> 8])), 1);
        __m256 w;
        if constexpr (std::is_same_v<V, float>) {
          const float* v = rows.vals[i] + c / 2;
          w = tail ? _mm256_maskload_ps(v, pre(rem / 2)) : _mm256_loadu_ps(v);
        } else {  // 8 widened 16-bit values (padded storage); a tail zeroes what follows the row
          w = widen8<V>(rows.vals16[i] + c / 2);
          if (tail) w = _mm256_and_ps(w, _mm256_castsi256_ps(pre(rem / 2)));
        }
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) {
          const __m256 g = _mm256_blend_ps(_mm256_permutevar8x32_ps(lo[b], idx),
                                           _mm256_permutevar8x32_ps(hi[b], idx), 0xF0);
          acc[i][b] = _mm256_fmadd_ps(w, g, acc[i][b]);
        }
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) out[i * NB + b] = hsum256(acc[i][b]);
  }
};

template <int R, int NB, bool Exact>
using Nm24Avx2 = Nm24Avx2T<float, R, NB, Exact>;
template <int R, int NB, bool Exact>
using Nm24Bf16Avx2 = Nm24Avx2T<Bf16, R, NB, Exact>;
template <int R, int NB, bool Exact>
using Nm24F16Avx2 = Nm24Avx2T<F16, R, NB, Exact>;

// out[0:8V] = sum_j v[j] * xt[idx[j], 0:8V]; U independent accumulators hide FMA latency.
template <int V>
RESSA_AVX2 void index_row_avx2(const float* v, const int32_t* idx, int64_t nnz, const float* xt,
                               float* out) {
  constexpr int U = V == 1 ? 4 : 2;
  __m256 acc[U][V];
#pragma GCC unroll 16
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 16
    for (int q = 0; q < V; ++q) acc[u][q] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + U <= nnz; j += U)
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) {
      const __m256 w = _mm256_broadcast_ss(v + j + u);
      const float* xr = xt + int64_t(idx[j + u]) * (8 * V);
#pragma GCC unroll 16
      for (int q = 0; q < V; ++q) acc[u][q] = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 8 * q), acc[u][q]);
    }
  for (; j < nnz; ++j) {
    const __m256 w = _mm256_broadcast_ss(v + j);
    const float* xr = xt + int64_t(idx[j]) * (8 * V);
#pragma GCC unroll 16
    for (int q = 0; q < V; ++q) acc[0][q] = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 8 * q), acc[0][q]);
  }
#pragma GCC unroll 16
  for (int q = 0; q < V; ++q) {
#pragma GCC unroll 16
    for (int u = 1; u < U; ++u) acc[0][q] = _mm256_add_ps(acc[0][q], acc[u][q]);
    _mm256_storeu_ps(out + 8 * q, acc[0][q]);
  }
}

// ---- AVX-512 ------------------------------------------------------------------------------

RESSA_AVX512 RESSA_INLINE void compress16(unsigned m, int64_t c, int32_t* idx, int64_t& n) {
  const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i ids = _mm512_maskz_compress_epi32(__mmask16(m), _mm512_add_epi32(iota, _mm512_set1_epi32(int32_t(c))));
  _mm512_storeu_si512(idx + n, ids);  // idx has 16 spare slots
  n += __builtin_popcount(m);
}

RESSA_AVX512 int64_t decode_bitmask_avx512(const uint8_t* mrow, int64_t cols, int32_t* idx) {
  const int64_t nbytes = (cols + 7) / 8;
  int64_t n = 0, i = 0;
  for (; i + 4 <= nbytes; i += 4) {
    const uint32_t m = load_as<uint32_t>(mrow + i);
    compress16(m & 0xFFFF, 8 * i, idx, n);
    compress16(m >> 16, 8 * i + 16, idx, n);
  }
  for (; i < nbytes; i += 2) compress16(unsigned(load_bytes(mrow + i, std::min<int64_t>(2, nbytes - i))), 8 * i, idx, n);
  return n;
}

// kmovw k, m16: GCC otherwise loads into a GPR and moves that to k, a port-5 uop (the port
// vexpandps needs).
RESSA_AVX512 RESSA_INLINE __mmask16 load_mask16(const uint8_t* p) {
  __mmask16 k;
  asm("kmovw %1, %0" : "=Yk"(k) : "m"(*reinterpret_cast<const uint16_t*>(p)));
  return k;
}

// Direct kernel, bitmask: out[i*NB + b] = dot(row i, x[b*xs : b*xs+cols]) for R rows, NB batch
// rows. vexpandps turns each 16-bit mask chunk and the next popcnt values into a dense vector;
// a step covers 64 columns, 4 chunks, of every row. With one row, a single accumulator would
// wait on the FMA latency, so each chunk of the step then gets its own.
template <int R, int NB, bool>
struct BitmaskAvx512 {
  static constexpr int S = R * NB >= 4 ? 1 : 4;  // accumulator sets
  RESSA_AVX512 static void run(const DirectRows& rows, int64_t cols, const float* x, int64_t xs, float* out) {
    __m512 acc[S][R][NB];
    const float* v[R];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i) {
      v[i] = rows.vals[i];
#pragma GCC unroll 4
      for (int s = 0; s < S; ++s)
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b) acc[s][i][b] = _mm512_setzero_ps();
    }
    int64_t c = 0;
    for (; c + 64 <= cols; c += 64) {
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const uint8_t* mp = rows.meta[i] + c / 8;
        _mm_prefetch(reinterpret_cast<const char*>(v[i] + kPrefetchFloats), _MM_HINT_T0);
        // Chunk k's values start after the kept weights of chunks < k: 64-bit popcounts of the
        // word shifted left (GCC narrows popcount(w & 0xFFFF) to a 16-bit popcnt, which merges
        // into its destination register and chains the chunks).
        const uint64_t word = load_as<uint64_t>(mp);
        // All four expands before any FMA, so that GCC gives each its own register: on Zen 5 a
        // zero-masked vexpandps waits for the last writer of its destination, and with one
        // register reused (expand, FMA, expand, ...) the expands ran in series, 2.5x slower.
        __m512 w[4];
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k)
          w[k] = _mm512_maskz_expandloadu_ps(load_mask16(mp + 2 * k),
                                             v[i] + (k ? __builtin_popcountll(word << (64 - 16 * k)) : 0));
#pragma GCC unroll 4
        for (int k = 0; k < 4; ++k)
#pragma GCC unroll 4
          for (int b = 0; b < NB; ++b)
            acc[k % S][i][b] = _mm512_fmadd_ps(w[k], _mm512_loadu_ps(x + b * xs + c + 16 * k), acc[k % S][i][b]);
        v[i] += __builtin_popcountll(word);
      }
    }
    for (; c < cols; c += 16) {  // padding bits are zero: only x needs masking
      const int64_t rem = std::min<int64_t>(16, cols - c);
      const __mmask16 xm = __mmask16(rem == 16 ? 0xFFFF : (1u << rem) - 1);
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const unsigned m = unsigned(load_bytes(rows.meta[i] + c / 8, (rem + 7) / 8));
        const __m512 w = _mm512_maskz_expandloadu_ps(__mmask16(m), v[i]);
        v[i] += __builtin_popcount(m);
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b)
          acc[0][i][b] = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(xm, x + b * xs + c), acc[0][i][b]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
#pragma GCC unroll 4
        for (int s = 1; s < S; ++s) acc[0][i][b] = _mm512_add_ps(acc[0][i][b], acc[s][i][b]);
        out[i * NB + b] = _mm512_reduce_add_ps(acc[0][i][b]);
      }
  }
};

RESSA_AVX512_VBMI2 RESSA_INLINE __mmask32 load_mask32(const uint8_t* p) {
  __mmask32 k;
  asm("kmovd %1, %0" : "=Yk"(k) : "m"(*reinterpret_cast<const uint32_t*>(p)));
  return k;
}

// Direct kernel, bitmask with bf16 values (one row): vpexpandw turns each 32-bit mask chunk and
// the next popcnt values into 32 bf16 words at once, half the port-5 work per column of
// vexpandps. Dword lane j then holds columns 2j (low half) and 2j+1 (high half); a shift and an
// and widen them to fp32 without another shuffle, so x comes deinterleaved per 32 columns
// (evens, then odds: pair_x), built once per call by the driver, zero past cols.
template <int R, int NB, bool>
struct BitmaskBf16Avx512 {
  static_assert(R == 1, "bitmask rows go one at a time");
  static constexpr int S = NB == 1 ? 2 : 1;  // accumulator sets
  RESSA_AVX512_VBMI2 static void run(const DirectRows& rows, int64_t cols, const float* x, int64_t xs, float* out) {
    const __m512i high = _mm512_set1_epi32(int32_t(0xFFFF0000u));
    __m512 acc[S][NB][2];
    const uint16_t* v = rows.vals16[0];
    const uint8_t* meta = rows.meta[0];
#pragma GCC unroll 4
    for (int s = 0; s < S; ++s)
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[s][b][0] = acc[s][b][1] = _mm512_setzero_ps();
    const auto step = [&](int s, __m512i w, int64_t c) RESSA_AVX512_VBMI2 {
      const __m512 even = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
      const __m512 odd = _mm512_castsi512_ps(_mm512_and_si512(w, high));
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
        acc[s][b][0] = _mm512_fmadd_ps(even, _mm512_loadu_ps(x + b * xs + c), acc[s][b][0]);
        acc[s][b][1] = _mm512_fmadd_ps(odd, _mm512_loadu_ps(x + b * xs + c + 16), acc[s][b][1]);
      }
    };
    int64_t c = 0;
    for (; c + 64 <= cols; c += 64) {
      const uint8_t* mp = meta + c / 8;
      _mm_prefetch(reinterpret_cast<const char*>(v) + 4 * kPrefetchFloats, _MM_HINT_T0);
      const uint64_t word = load_as<uint64_t>(mp);
      // Both expands first (own registers; see the fp32 kernel).
      const __m512i w0 = _mm512_maskz_expandloadu_epi16(load_mask32(mp), v);
      const __m512i w1 = _mm512_maskz_expandloadu_epi16(load_mask32(mp + 4), v + __builtin_popcount(uint32_t(word)));
      step(0, w0, c);
      step(S - 1, w1, c + 32);
      v += __builtin_popcountll(word);
    }
    for (; c < cols; c += 32) {  // padding bits are zero and pair_x is zero past cols
      const uint32_t m = uint32_t(load_bytes(meta + c / 8, (std::min<int64_t>(32, cols - c) + 7) / 8));
      step(0, _mm512_maskz_expandloadu_epi16(__mmask32(m), v), c);
      v += __builtin_popcount(m);
    }
#pragma GCC unroll 4
    for (int b = 0; b < NB; ++b) {
      __m512 sum = _mm512_add_ps(acc[0][b][0], acc[0][b][1]);
#pragma GCC unroll 4
      for (int s = 1; s < S; ++s) sum = _mm512_add_ps(sum, _mm512_add_ps(acc[s][b][0], acc[s][b][1]));
      out[b] = _mm512_reduce_add_ps(sum);
    }
  }
};

// Direct kernel, 2:4: per 32 columns (8 groups, 16 values, 4 position bytes) vpermt2ps gathers x
// at column 4 * (j / 2) + position_j for the 16 values j.
template <class V, int R, int NB, bool>
struct Nm24Avx512T {
  RESSA_AVX512 static void run(const DirectRows& rows, int64_t cols, const float* x, int64_t xs, float* out) {
    const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i base = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
    __m512 acc[R][NB];
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) acc[i][b] = _mm512_setzero_ps();
    for (int64_t c = 0; c < cols; c += 32) {
      const int64_t rem = std::min<int64_t>(32, cols - c);  // a multiple of 4
      const bool tail = rem < 32;
      const auto below = [](int64_t k) { return __mmask16(k >= 16 ? 0xFFFF : k <= 0 ? 0 : (1u << k) - 1); };
      __m512 lo[NB], hi[NB];
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) {
        const float* xb = x + b * xs + c;
        lo[b] = tail ? _mm512_maskz_loadu_ps(below(rem), xb) : _mm512_loadu_ps(xb);
        hi[b] = tail ? _mm512_maskz_loadu_ps(below(rem - 16), xb + 16) : _mm512_loadu_ps(xb + 16);
      }
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) {
        const uint8_t* pp = rows.meta[i] + c / 8;
        // Prefetch the same column of the next group of R rows (2:4 rows are stored one after
        // another, cols/2 values and cols/8 position bytes each): a group's rows are read side
        // by side, so a prefetch distance within the row would leave the start of every row of
        // the next group to demand misses. On a Zen 5 core: 0.87-0.96 of the time of a 2 KiB
        // in-row prefetch (bf16 values 0.61-0.66), which ran 1.1-1.2x faster than none
        // (docs/kernels.md "Kernels").
        if (c % 512 == 0) _mm_prefetch(reinterpret_cast<const char*>(pp + R * cols / 8), _MM_HINT_T0);
        const uint32_t p = tail ? uint32_t(load_bytes(pp, (rem + 7) / 8)) : load_as<uint32_t>(pp);
        // (p >> shift) & 3 | base in one vpternlogd (0xEA = (A & B) | C): base has no bits 0-1.
        const __m512i idx = _mm512_ternarylogic_epi32(_mm512_srlv_epi32(_mm512_set1_epi32(int32_t(p)), shifts),
                                                      _mm512_set1_epi32(3), base, 0xEA);
        __m512 w;
        if constexpr (std::is_same_v<V, float>) {
          const float* v = rows.vals[i] + c / 2;
          _mm_prefetch(reinterpret_cast<const char*>(v + R * cols / 2), _MM_HINT_T0);
          w = tail ? _mm512_maskz_loadu_ps(below(rem / 2), v) : _mm512_loadu_ps(v);
        } else {  // 16 widened 16-bit values (padded storage); a tail zeroes what follows the row
          _mm_prefetch(reinterpret_cast<const char*>(rows.vals16[i] + c / 2 + R * cols / 2), _MM_HINT_T0);
          const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows.vals16[i] + c / 2));
          if constexpr (std::is_same_v<V, F16>) w = _mm512_cvtph_ps(h);
          else w = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
          if (tail) w = _mm512_maskz_mov_ps(below(rem / 2), w);
        }
#pragma GCC unroll 4
        for (int b = 0; b < NB; ++b)
          acc[i][b] = _mm512_fmadd_ps(w, _mm512_permutex2var_ps(lo[b], idx, hi[b]), acc[i][b]);
      }
    }
#pragma GCC unroll 4
    for (int i = 0; i < R; ++i)
#pragma GCC unroll 4
      for (int b = 0; b < NB; ++b) out[i * NB + b] = _mm512_reduce_add_ps(acc[i][b]);
  }
};

template <int R, int NB, bool Exact>
using Nm24Avx512 = Nm24Avx512T<float, R, NB, Exact>;
template <int R, int NB, bool Exact>
using Nm24Bf16Avx512 = Nm24Avx512T<Bf16, R, NB, Exact>;
template <int R, int NB, bool Exact>
using Nm24F16Avx512 = Nm24Avx512T<F16, R, NB, Exact>;

template <int V>
RESSA_AVX512 void index_row_avx512(const float* v, const int32_t* idx, int64_t nnz, const float* xt,
                                   float* out) {
  constexpr int U = V == 1 ? 4 : 2;
  __m512 acc[U][V];
#pragma GCC unroll 16
  for (int u = 0; u < U; ++u)
#pragma GCC unroll 16
    for (int q = 0; q < V; ++q) acc[u][q] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + U <= nnz; j += U)
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) {
      const __m512 w = _mm512_set1_ps(v[j + u]);
      const float* xr = xt + int64_t(idx[j + u]) * (16 * V);
#pragma GCC unroll 16
      for (int q = 0; q < V; ++q) acc[u][q] = _mm512_fmadd_ps(w, _mm512_load_ps(xr + 16 * q), acc[u][q]);
    }
  for (; j < nnz; ++j) {
    const __m512 w = _mm512_set1_ps(v[j]);
    const float* xr = xt + int64_t(idx[j]) * (16 * V);
#pragma GCC unroll 16
    for (int q = 0; q < V; ++q) acc[0][q] = _mm512_fmadd_ps(w, _mm512_load_ps(xr + 16 * q), acc[0][q]);
  }
#pragma GCC unroll 16
  for (int q = 0; q < V; ++q) {
#pragma GCC unroll 16
    for (int u = 1; u < U; ++u) acc[0][q] = _mm512_add_ps(acc[0][q], acc[u][q]);
    _mm512_storeu_ps(out + 16 * q, acc[0][q]);
  }
}

RESSA_AVX512_END

// ---- drivers ------------------------------------------------------------------------------

// Batch rows per block: the index kernel holds up to 4 vectors of batch lanes per weight.
constexpr int64_t kBatchBlock[3] = {64, 32, 64};  // scalar, avx2, avx512

using DirectFn = void (*)(const DirectRows&, int64_t, const float*, int64_t, float*);
using IndexFn = void (*)(const float*, const int32_t*, int64_t, const float*, float*);
constexpr int kMaxNB[3] = {0, 2, 4};  // batch rows per direct call: kRows x NB accumulators

// Direct kernel K for r rows (1..kRows) and nb batch rows (1..4).
template <template <int, int, bool> class K, int R, bool Exact = false>
DirectFn direct_fn(int nb) {
  static const DirectFn table[4] = {K<R, 1, Exact>::run, K<R, 2, Exact>::run, K<R, 3, Exact>::run,
                                    K<R, 4, Exact>::run};
  return table[nb - 1];
}
template <template <int, int, bool> class K>
DirectFn direct_fn(int r, int nb) {
  return r == 1 ? direct_fn<K, 1>(nb) : r == 2 ? direct_fn<K, 2>(nb) : r == 3 ? direct_fn<K, 3>(nb) : direct_fn<K, 4>(nb);
}

IndexFn index_fn(Isa isa, int v) {
  static const IndexFn avx2[] = {nullptr, index_row_avx2<1>, index_row_avx2<2>, index_row_avx2<3>, index_row_avx2<4>};
  static const IndexFn avx512[] = {nullptr, index_row_avx512<1>, index_row_avx512<2>,
                                   index_row_avx512<3>, index_row_avx512<4>};
  return isa == Isa::avx512 ? avx512[v] : avx2[v];
}

// Cost model, fitted to single-thread timings of both kernel kinds on a 4096x4096 weight (ms on
// the development machine; only the ratio matters, docs/kernels.md). The direct kernels do
// dense work per column, linear in the batch (the 2:4 kernel reuses each x load over 4 rows,
// the bitmask kernel does not); the index kernel pays a fixed decode cost plus a cost per kept
// weight that grows slowly with the vectors of batch lanes it updates.
double direct_cost(Isa isa, bool nm24, int64_t nb) {
  const double b = double(nb);
  if (isa == Isa::avx512) return nm24 ? 2.5 + 0.4 * b : 0.6 + 1.5 * b;
  return nm24 ? 1.0 + 1.8 * b : 0.6 + 1.75 * b;
}
double index_cost(Isa isa, double density, int64_t nb) {
  const double vectors = std::ceil(double(nb) / lanes(isa));
  return isa == Isa::avx512 ? 0.8 + 29.0 * density * (1.0 + 0.3 * (vectors - 1.0))
                            : 1.0 + 24.0 * density * (1.0 + 0.3 * (vectors - 1.0));
}

// 64-byte aligned float buffer (x^T rows are whole vectors).
struct AlignedFloats {
  explicit AlignedFloats(size_t n)
      : p(static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64 + 64)),
          &std::free) {
    if (!p) fail("[sparse kernels] out of memory allocating ", n, " floats");
  }
  std::unique_ptr<float, decltype(&std::free)> p;
};

// x (nb, cols) deinterleaved per 32 columns into out (nb, ceil(cols/32)*32): chunk q holds
// columns 32q, 32q+2, ..., 32q+30, then 32q+1, ..., 32q+31; zero past cols.
void pair_x(const float* x, int64_t nb, int64_t cols, float* out) {
  const int64_t cp = (cols + 31) / 32 * 32;
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t q = 0; q < cp; q += 32)
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t e = q + 2 * j, o = e + 1;
        out[b * cp + q + j] = e < cols ? x[b * cols + e] : 0.0f;
        out[b * cp + q + 16 + j] = o < cols ? x[b * cols + o] : 0.0f;
      }
}

// Tasks a call over `rows` rows is cut into for t threads: several per thread, so that a thread
// the OS runs late (another process on its core) does not hold up the call, each of at least
// kMinTaskRows rows.
constexpr int kTasksPerThread = 8;
constexpr int64_t kMinTaskRows = 16;
int task_count(int64_t rows, int t) {
  if (t <= 1) return 1;
  return int(std::max<int64_t>(t, std::min<int64_t>(int64_t(t) * kTasksPerThread, rows / kMinTaskRows)));
}

// Row ranges for n tasks with about equal cost, a row costing nnz + cols/8 units; inner bounds
// are multiples of `align` (the rows a direct call takes at once).
std::vector<int64_t> split_rows(int64_t rows, int64_t cols, const int64_t* offsets, int n, int64_t align) {
  std::vector<int64_t> bounds(size_t(n) + 1, rows);
  bounds[0] = 0;
  const auto cost = [&](int64_t r) { return double(offsets ? offsets[r] : 0) + double(r) * double(cols) / 8.0; };
  const double total = cost(rows);
  for (int i = 1; i < n; ++i) {
    int64_t lo = bounds[size_t(i) - 1], hi = rows;  // first row with cost >= i/n of the total
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (cost(mid) < total * i / n) lo = mid + 1;
      else hi = mid;
    }
    bounds[size_t(i)] = std::min(rows, std::max(bounds[size_t(i) - 1], (lo + align - 1) / align * align));
  }
  return bounds;
}

// Per-format access for the driver: row values, kept column indices, the direct row kernel.
struct BitmaskSource {
  const BitmaskMatrix& w;
  bool half() const { return w.value_type() != ValueType::f32; }  // 16-bit values
  const int64_t* offsets() const { return w.row_offsets().data(); }
  const float* values(int64_t r) const { return half() ? nullptr : w.values().data() + w.row_offsets()[size_t(r)]; }
  const uint16_t* values16(int64_t r) const {
    return half() ? w.values16().data() + w.row_offsets()[size_t(r)] : nullptr;
  }
  // Row r's values as fp32 (16-bit ones widened into buf, room for cols floats).
  const float* row_floats(Isa isa, int64_t r, float* buf) const {
    if (!half()) return values(r);
    widen_half(isa, w.value_type(), values16(r), w.row_offsets()[size_t(r) + 1] - w.row_offsets()[size_t(r)], buf);
    return buf;
  }
  const uint8_t* meta(int64_t r) const { return w.bitmask().data() + r * w.mask_stride(); }
  static constexpr int kGroup = 1;  // rows per direct call
  // The bf16 AVX-512 kernel takes x deinterleaved per 32 columns (pair_x); it runs in 0.66 of the
  // fp32 kernel's time at batch 1 and 4 (4096x4096, 70%, one core; docs/kernels.md), so the cost
  // model keeps it direct up to batch 9 at 70% sparsity instead of 5.
  bool paired_x(Isa isa) const { return w.value_type() == ValueType::bf16 && isa == Isa::avx512 && has_vbmi2(); }
  // f16 values with AVX-512: each row's values are widened into a buffer (vcvtph2ps, 16 at a
  // time) and the fp32 kernel runs on it. Widening inside the kernel, after vpexpandw, ran at
  // 2.4 cycles per 8 columns from L2 against the fp32 kernel's 1.6 (docs/benchmarks.md
  // "Kernel design measurements"); the buffer stays in L1, memory traffic is still 2 bytes per value.
  bool widen_first(Isa isa) const { return w.value_type() == ValueType::f16 && isa == Isa::avx512; }
  double direct_scale(Isa isa) const { return paired_x(isa) ? 0.66 : 1.0; }
  // AVX2 loads 8 values per chunk unless that would pass the end of all values (exact; 16-bit
  // values are padded instead).
  DirectFn direct(Isa isa, int r, int nb, const float* last_row) const {
    (void)r;  // always 1 (kGroup)
    if (half()) {
      const bool f16 = w.value_type() == ValueType::f16;
      if (widen_first(isa)) return direct_fn<BitmaskAvx512, 1>(nb);
      if (paired_x(isa)) return direct_fn<BitmaskBf16Avx512, 1>(nb);
      if (isa == Isa::scalar) return nullptr;
      return f16 ? direct_fn<BitmaskF16Avx2, 1>(nb) : direct_fn<BitmaskBf16Avx2, 1>(nb);
    }
    if (isa == Isa::avx512) return direct_fn<BitmaskAvx512, 1>(nb);
    if (isa != Isa::avx2) return nullptr;
    const bool exact = w.values().data() + w.values().size() - last_row < w.cols() + 8;
    return exact ? direct_fn<BitmaskAvx2, 1, true>(nb) : direct_fn<BitmaskAvx2, 1>(nb);
  }
  int64_t decode(Isa isa, int64_t r, int32_t* idx) const {
    if (isa == Isa::avx512) return decode_bitmask_avx512(meta(r), w.cols(), idx);
    if (isa == Isa::avx2) return decode_bitmask_avx2(meta(r), w.cols(), idx);
    return decode_bitmask_scalar(meta(r), w.cols(), idx);
  }
};

struct NMSource {
  const NMMatrix& w;
  bool half() const { return w.value_type() != ValueType::f32; }  // 16-bit values
  const int64_t* offsets() const { return nullptr; }
  const float* values(int64_t r) const { return half() ? nullptr : w.values().data() + r * w.values_per_row(); }
  const uint16_t* values16(int64_t r) const {
    return half() ? w.values16().data() + r * w.values_per_row() : nullptr;
  }
  const float* row_floats(Isa isa, int64_t r, float* buf) const {
    if (!half()) return values(r);
    widen_half(isa, w.value_type(), values16(r), w.values_per_row(), buf);
    return buf;
  }
  const uint8_t* meta(int64_t r) const { return w.positions().data() + r * w.pos_stride(); }
  static constexpr int kGroup = kRows;
  bool paired_x(Isa) const { return false; }
  bool widen_first(Isa) const { return false; }
  double direct_scale(Isa) const { return 1.0; }
  DirectFn direct(Isa isa, int r, int nb, const float*) const {
    if (w.n() != 2 || w.m() != 4 || isa == Isa::scalar) return nullptr;
    if (w.value_type() == ValueType::f16)
      return isa == Isa::avx512 ? direct_fn<Nm24F16Avx512>(r, nb) : direct_fn<Nm24F16Avx2>(r, nb);
    if (w.value_type() == ValueType::bf16)
      return isa == Isa::avx512 ? direct_fn<Nm24Bf16Avx512>(r, nb) : direct_fn<Nm24Bf16Avx2>(r, nb);
    return isa == Isa::avx512 ? direct_fn<Nm24Avx512>(r, nb) : direct_fn<Nm24Avx2>(r, nb);
  }
  int64_t decode(Isa isa, int64_t r, int32_t* idx) const {
    const uint8_t* prow = meta(r);
    if (w.m() == 4 && w.n() == 2) {  // a byte holds 2 groups: a table gives their 4 columns
      if (isa != Isa::scalar) decode_nm24_avx2(prow, w.pos_stride(), idx);
      else
        for (int64_t i = 0; i < w.pos_stride(); ++i)
          for (int q = 0; q < 4; ++q) idx[4 * i + q] = int32_t(8 * i + kLut.nm24[prow[i]][q]);
      return w.values_per_row();
    }
    const int bits = w.pos_bits(), k = w.kept_per_group(), m = w.m();
    const int64_t stride = w.pos_stride();
    const unsigned mask = (1u << bits) - 1;
    int64_t j = 0;
    for (int64_t g = 0; g < w.groups_per_row(); ++g)
      for (int q = 0; q < k; ++q, ++j) {
        const int64_t bit = j * bits, byte = bit >> 3;
        const unsigned window = prow[byte] | (byte + 1 < stride ? unsigned(prow[byte + 1]) << 8 : 0u);
        idx[j] = int32_t(g * m + ((window >> (bit & 7)) & mask));
      }
    return j;
  }
};

void check_call(const char* fn, const float* x, int64_t batch, const float* y, int threads,
                int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1) fail_arg("[", fn, "] weight is empty (shape [", rows, ", ", cols, "])");
  if (batch < 0) fail_arg("[", fn, "] batch must be >= 0, got ", batch);
  if (threads < 1) fail_arg("[", fn, "] threads must be >= 1, got ", threads);
  if (batch > 0 && (!x || !y))
    fail_arg("[", fn, "] x (", batch, ", ", cols, ") and y (", batch, ", ", rows, ") must not be null");
}

// y (batch, rows) = x (batch, cols) W^T, W (rows, cols) given by src.
template <class Source>
void matmul(const Source& src, int64_t rows, int64_t cols, double density, const float* x,
            int64_t batch, float* y, int threads) {
  const Isa isa = active_isa();
  const int t = int(std::min<int64_t>(threads, rows));
  const int tasks = task_count(rows, t);
  const std::vector<int64_t> bounds = split_rows(rows, cols, src.offsets(), tasks, Source::kGroup);
  for (int64_t b0 = 0; b0 < batch; b0 += kBatchBlock[int(isa)]) {
    const int64_t nb = std::min(kBatchBlock[int(isa)], batch - b0);
    const float* xb = x + b0 * cols;
    float* yb = y + b0 * rows;
    if (src.direct(isa, 1, 1, nullptr) &&
        src.direct_scale(isa) * direct_cost(isa, Source::kGroup > 1, nb) <= index_cost(isa, density, nb)) {
      const int max_nb = kMaxNB[int(isa)];
      // x as the kernel reads it: as given, or deinterleaved per 32 columns (bf16 AVX-512 bitmask).
      const float* xd = xb;
      int64_t xs = cols;
      std::optional<AlignedFloats> paired;
      if (src.paired_x(isa)) {
        xs = (cols + 31) / 32 * 32;
        paired.emplace(size_t(nb * xs));
        pair_x(xb, nb, cols, paired->p.get());
        xd = paired->p.get();
      }
      const bool widen = src.widen_first(isa);
      Pool::get().run(tasks, t, [&](int i) {
        float out[kRows * 4];
        std::vector<float> wide(widen ? size_t(cols) : 0);  // widen_first: the row's values as fp32
        for (int64_t r = bounds[size_t(i)]; r < bounds[size_t(i) + 1]; r += Source::kGroup) {
          const int nr = int(std::min<int64_t>(Source::kGroup, bounds[size_t(i) + 1] - r));
          DirectRows group{};
          for (int j = 0; j < nr; ++j)
            group.meta[j] = src.meta(r + j), group.vals[j] = src.values(r + j), group.vals16[j] = src.values16(r + j);
          if (widen) group.vals[0] = src.row_floats(isa, r, wide.data()), group.vals16[0] = nullptr;
          for (int64_t bb = 0; bb < nb; bb += max_nb) {
            const int k = int(std::min<int64_t>(max_nb, nb - bb));
            src.direct(isa, nr, k, group.vals[nr - 1])(group, cols, xd + bb * xs, xs, out);
            for (int j = 0; j < nr; ++j)
              for (int b = 0; b < k; ++b) yb[(bb + b) * rows + r + j] = out[j * k + b];
          }
        }
      });
      continue;
    }
    // Index kernel: x^T (cols, bp), the batch padded with zeros to whole vectors.
    const int l = lanes(isa);
    const int bp = int((nb + l - 1) / l * l);
    AlignedFloats xt(size_t(cols * bp));
    float* xtp = xt.p.get();
    for (int64_t c = 0; c < cols; ++c)
      for (int b = 0; b < bp; ++b) xtp[c * bp + b] = b < nb ? xb[b * cols + c] : 0.0f;
    std::vector<std::vector<int32_t>> idx(size_t(tasks), std::vector<int32_t>(size_t(cols + 16)));
    const IndexFn vec = isa == Isa::scalar ? nullptr : index_fn(isa, bp / l);
    Pool::get().run(tasks, t, [&](int i) {
      alignas(64) float out[64];
      int32_t* id = idx[size_t(i)].data();
      std::vector<float> vb(src.half() ? size_t(cols) : 0);  // 16-bit values widened per row
      for (int64_t r = bounds[size_t(i)]; r < bounds[size_t(i) + 1]; ++r) {
        const int64_t n = src.decode(isa, r, id);
        const float* v = src.row_floats(isa, r, vb.data());
        if (vec) vec(v, id, n, xtp, out);
        else index_row_scalar(v, id, n, xtp, bp, out);
        for (int64_t b = 0; b < nb; ++b) yb[b * rows + r] = out[b];
      }
    });
  }
}

}  // namespace

const char* to_string(Isa isa) {
  return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "scalar";
}

Isa parse_isa(const std::string& s) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512})
    if (s == to_string(isa)) return isa;
  fail_arg("unknown kernel path '", s, "' (expected scalar, avx2 or avx512)");
}

Isa best_isa(const CpuFeatures& cpu) {
  for (Isa isa : {Isa::avx512, Isa::avx2})
    if (missing_features(isa, cpu).empty()) return isa;
  return Isa::scalar;
}

Isa isa_limit(const char* ressa_isa, const CpuFeatures& cpu) {
  const Isa best = best_isa(cpu);
  if (!ressa_isa || !*ressa_isa) return best;
  Isa asked;
  try {
    asked = parse_isa(ressa_isa);
  } catch (const std::invalid_argument& e) {
    fail_arg("[kernels] RESSA_ISA=", ressa_isa, ": ", e.what(), "; this CPU runs up to ", to_string(best));
  }
  if (asked > best)
    fail_arg("[kernels] RESSA_ISA=", ressa_isa, " asks for a kernel path this CPU cannot run: it runs up to ",
             to_string(best), " (missing:", missing_features(asked, cpu), ")");
  return asked;
}

Isa detected_isa() {
  static const Isa isa = isa_limit(std::getenv("RESSA_ISA"), cpu_features());
  return isa;
}

Isa active_isa() { return Isa(std::min(int(detected_isa()), g_max_isa.load())); }
void set_max_isa(Isa isa) { g_max_isa.store(int(isa)); }
void set_force_scalar(bool on) { set_max_isa(on ? Isa::scalar : Isa::avx512); }
void set_parallel_runner(ParallelRunner runner) { g_runner.store(runner, std::memory_order_release); }

void bitmask_matmul(const BitmaskMatrix& w, const float* x, int64_t batch, float* y, int threads) {
  check_call("bitmask_matmul", x, batch, y, threads, w.rows(), w.cols());
  matmul(BitmaskSource{w}, w.rows(), w.cols(), w.density(), x, batch, y, threads);
}

void nm_matmul(const NMMatrix& w, const float* x, int64_t batch, float* y, int threads) {
  check_call("nm_matmul", x, batch, y, threads, w.rows(), w.cols());
  matmul(NMSource{w}, w.rows(), w.cols(), double(w.kept_per_group()) / w.m(), x, batch, y, threads);
}

void dense_matmul_ref(const float* w, int64_t rows, int64_t cols, const float* x, int64_t batch,
                      float* y) {
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t r = 0; r < rows; ++r) {
      double acc = 0.0;
      for (int64_t c = 0; c < cols; ++c) acc += double(w[r * cols + c]) * double(x[b * cols + c]);
      y[b * rows + r] = float(acc);
    }
}

}  // namespace ressa::sparse
