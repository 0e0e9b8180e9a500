// Sparse x dense kernels (y = x W^T) for BitmaskMatrix and NMMatrix with runtime ISA dispatch.
// Three row kernels, picked per call by a cost model (docs/kernels.md explains the numbers):
//   expand  (AVX2/AVX-512, bitmask, small batch): expand each 8/16-column mask chunk's kept
//           values into a dense vector (LUT + vpermps, or vexpandps) and FMA it with every
//           batch row of x, so one weight load serves the whole batch block.
//   nm24    (AVX2/AVX-512, 2:4, small batch): gather x at the kept positions with vpermps /
//           vpermt2ps and FMA with the contiguous values.
//   index   (all ISAs, any format, larger batch): decode a row's kept column indices, then per
//           kept weight broadcast it and FMA with x^T[col, 0:batch] (x transposed once per
//           call), so work scales with nnz instead of cols.
#include "ressa/sparse/kernels.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "ressa/core/error.h"

// GCC 12 warns about the self-initialised _mm512_undefined_*() inside its own AVX-512 headers
// (GCC bug 105593, fixed in 13); the warning is spurious here.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#define RESSA_AVX2 __attribute__((target("avx2,fma,popcnt,bmi,bmi2")))
#define RESSA_AVX512 __attribute__((target("avx512f,avx2,fma,popcnt,bmi,bmi2")))
#define RESSA_INLINE inline __attribute__((always_inline))

namespace ressa::sparse {
namespace {

// ---- dispatch -----------------------------------------------------------------------------

std::atomic<int> g_max_isa{int(Isa::avx512)};

Isa detect() {
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("popcnt") && __builtin_cpu_supports("bmi") &&
                    __builtin_cpu_supports("bmi2");
  if (avx2 && __builtin_cpu_supports("avx512f")) return Isa::avx512;
  return avx2 ? Isa::avx2 : Isa::scalar;
}

int lanes(Isa isa) { return isa == Isa::avx512 ? 16 : isa == Isa::avx2 ? 8 : 1; }

// ---- thread pool --------------------------------------------------------------------------

// Persistent workers so that a ~0.1 ms matmul does not pay thread start-up each call.
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
  // Runs fn(i) for i in [0, n) on the caller plus up to n - 1 workers; returns when all are done.
  // fn must not throw. Concurrent callers take turns.
  void run(int n, const std::function<void(int)>& fn) {
    if (n <= 1) {
      if (n == 1) fn(0);
      return;
    }
    std::lock_guard<std::mutex> turn(run_mu_);
    while (int(workers_.size()) < n - 1)
      workers_.emplace_back([this, g = gen_.load()] { loop(g); });
    {
      std::lock_guard<std::mutex> lk(mu_);
      fn_ = &fn;
      n_ = n;
      done_.store(0);
      next_.store(0);
      gen_.fetch_add(1);
    }
    cv_.notify_all();
    work();
    while (done_.load(std::memory_order_acquire) < n) std::this_thread::yield();
  }

 private:
  void work() {
    for (;;) {
      const int i = next_.fetch_add(1);
      if (i >= n_) return;
      (*fn_)(i);
      done_.fetch_add(1, std::memory_order_release);
    }
  }
  void loop(uint64_t seen) {
    for (;;) {
      // Spin briefly (back-to-back calls are common), then sleep.
      for (int i = 0; i < 20000 && gen_.load(std::memory_order_acquire) == seen; ++i) _mm_pause();
      if (gen_.load(std::memory_order_acquire) == seen) {
        std::unique_lock<std::mutex> lk(mu_);
        cv_.wait(lk, [&] { return gen_.load() != seen; });
      }
      std::unique_lock<std::mutex> lk(mu_);
      seen = gen_.load();
      if (stop_) return;
      lk.unlock();
      work();
    }
  }
  std::mutex run_mu_, mu_;
  std::condition_variable cv_;
  std::vector<std::thread> workers_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> next_{0}, done_{0};
  const std::function<void(int)>* fn_ = nullptr;
  int n_ = 0;
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

// ---- AVX2 ---------------------------------------------------------------------------------

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

// Lanes < k all ones (k clamped to [0, 8]), a maskload mask.
RESSA_AVX2 RESSA_INLINE __m256i pre(int64_t k) {
  return _mm256_load_si256(reinterpret_cast<const __m256i*>(kLut.prefix[std::clamp<int64_t>(k, 0, 8)]));
}

// One 8-column chunk of an expand row: acc[b] += expand(mask m, v) * x[b*xs : b*xs+8].
// Exact reads only popcnt(m) values; otherwise 8 (the caller checked they exist).
template <int NB, bool Exact, bool TailX>
RESSA_AVX2 RESSA_INLINE void bm_step256(__m256 (&acc)[NB], unsigned m, const float*& v,
                                        const float* x, int64_t xs, __m256i xmask) {
  const int pc = __builtin_popcount(m);
  const ExpandEntry& e = kLut.expand[m];
  const __m256 raw = Exact ? _mm256_maskload_ps(v, pre(pc)) : _mm256_loadu_ps(v);
  const __m256 w = _mm256_and_ps(
      _mm256_permutevar8x32_ps(raw, _mm256_load_si256(reinterpret_cast<const __m256i*>(e.idx))),
      _mm256_load_ps(reinterpret_cast<const float*>(e.keep)));
  v += pc;
  for (int b = 0; b < NB; ++b) {
    const __m256 xb = TailX ? _mm256_maskload_ps(x + b * xs, xmask) : _mm256_loadu_ps(x + b * xs);
    acc[b] = _mm256_fmadd_ps(w, xb, acc[b]);
  }
}

RESSA_AVX2 RESSA_INLINE float hsum256(__m256 a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <int NB, bool Exact>
RESSA_AVX2 RESSA_INLINE void bm_row_avx2_impl(const uint8_t* mrow, const float* v, int64_t cols,
                                              const float* x, int64_t xs, float* out) {
  __m256 a0[NB], a1[NB];
  for (int b = 0; b < NB; ++b) a0[b] = a1[b] = _mm256_setzero_ps();
  const __m256i all = _mm256_set1_epi32(-1);
  int64_t c = 0;
  for (; c + 16 <= cols; c += 16) {
    const unsigned m = load_as<uint16_t>(mrow + c / 8);
    bm_step256<NB, Exact, false>(a0, m & 255, v, x + c, xs, all);
    bm_step256<NB, Exact, false>(a1, m >> 8, v, x + c + 8, xs, all);
  }
  for (; c < cols; c += 8)  // padding bits are zero, so the partial chunk needs only x masked
    bm_step256<NB, true, true>(a0, mrow[c / 8], v, x + c, xs, pre(cols - c));
  for (int b = 0; b < NB; ++b) out[b] = hsum256(_mm256_add_ps(a0[b], a1[b]));
}

// out[b] = dot(bitmask row, x[b*xs : b*xs+cols]) for b < NB; v: the row's values, vend: the end
// of all values (rows far from it may over-read, which lets the loop use plain loads).
template <int NB>
RESSA_AVX2 void bm_row_avx2(const uint8_t* mrow, const float* v, const float* vend, int64_t cols,
                            const float* x, int64_t xs, float* out) {
  if (vend - v >= cols + 8) bm_row_avx2_impl<NB, false>(mrow, v, cols, x, xs, out);
  else bm_row_avx2_impl<NB, true>(mrow, v, cols, x, xs, out);
}

// One 16-column (4-group) chunk of a 2:4 row: 8 values, positions in 16 bits p.
template <int NB, bool Tail>
RESSA_AVX2 RESSA_INLINE void nm24_step256(__m256 (&acc)[NB], unsigned p, const float* v,
                                          const float* x, int64_t xs, int64_t rem) {
  const __m256i idx = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kLut.nm24[p & 255]))),
      _mm_load_si128(reinterpret_cast<const __m128i*>(kLut.nm24[p >> 8])), 1);
  const __m256 w = Tail ? _mm256_maskload_ps(v, pre(rem / 2)) : _mm256_loadu_ps(v);
  for (int b = 0; b < NB; ++b) {
    const float* xb = x + b * xs;
    const __m256 lo = Tail ? _mm256_maskload_ps(xb, pre(rem)) : _mm256_loadu_ps(xb);
    const __m256 hi = Tail ? _mm256_maskload_ps(xb + 8, pre(rem - 8)) : _mm256_loadu_ps(xb + 8);
    const __m256 g = _mm256_blend_ps(_mm256_permutevar8x32_ps(lo, idx),
                                     _mm256_permutevar8x32_ps(hi, idx), 0xF0);
    acc[b] = _mm256_fmadd_ps(w, g, acc[b]);
  }
}

// out[b] = dot(2:4 row, x[b*xs : b*xs+cols]) for b < NB; prow holds the row's 2-bit positions.
template <int NB>
RESSA_AVX2 void nm24_row_avx2(const uint8_t* prow, const float* v, const float*, int64_t cols,
                              const float* x, int64_t xs, float* out) {
  __m256 a0[NB], a1[NB];
  for (int b = 0; b < NB; ++b) a0[b] = a1[b] = _mm256_setzero_ps();
  int64_t c = 0;
  for (; c + 32 <= cols; c += 32) {  // 32 columns = 16 values = 4 position bytes
    const uint32_t p = load_as<uint32_t>(prow + c / 8);
    nm24_step256<NB, false>(a0, p & 0xFFFF, v + c / 2, x + c, xs, 16);
    nm24_step256<NB, false>(a1, p >> 16, v + c / 2 + 8, x + c + 16, xs, 16);
  }
  for (; c < cols; c += 16) {
    const int64_t rem = std::min<int64_t>(16, cols - c);
    const unsigned p = unsigned(load_bytes(prow + c / 8, (rem + 7) / 8));
    if (rem == 16) nm24_step256<NB, false>(a0, p, v + c / 2, x + c, xs, 16);
    else nm24_step256<NB, true>(a0, p, v + c / 2, x + c, xs, rem);
  }
  for (int b = 0; b < NB; ++b) out[b] = hsum256(_mm256_add_ps(a0[b], a1[b]));
}

// out[0:8V] = sum_j v[j] * xt[idx[j], 0:8V]; U independent accumulators hide FMA latency.
template <int V>
RESSA_AVX2 void index_row_avx2(const float* v, const int32_t* idx, int64_t nnz, const float* xt,
                               float* out) {
  constexpr int U = V == 1 ? 4 : 2;
  __m256 acc[U][V];
  for (int u = 0; u < U; ++u)
    for (int q = 0; q < V; ++q) acc[u][q] = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + U <= nnz; j += U)
    for (int u = 0; u < U; ++u) {
      const __m256 w = _mm256_broadcast_ss(v + j + u);
      const float* xr = xt + int64_t(idx[j + u]) * (8 * V);
      for (int q = 0; q < V; ++q) acc[u][q] = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 8 * q), acc[u][q]);
    }
  for (; j < nnz; ++j) {
    const __m256 w = _mm256_broadcast_ss(v + j);
    const float* xr = xt + int64_t(idx[j]) * (8 * V);
    for (int q = 0; q < V; ++q) acc[0][q] = _mm256_fmadd_ps(w, _mm256_load_ps(xr + 8 * q), acc[0][q]);
  }
  for (int q = 0; q < V; ++q) {
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

// One 16-column chunk of an expand row: acc[b] += expand(mask m, v) * x[b*xs : b*xs+16].
// Exact reads only popcnt(m) values; otherwise 16 (the caller checked they exist).
template <int NB, bool Exact, bool TailX>
RESSA_AVX512 RESSA_INLINE void bm_step512(__m512 (&acc)[NB], unsigned m, const float*& v,
                                          const float* x, int64_t xs, __mmask16 xmask) {
  const __m512 w = Exact ? _mm512_maskz_expandloadu_ps(__mmask16(m), v)
                         : _mm512_maskz_expand_ps(__mmask16(m), _mm512_loadu_ps(v));
  v += __builtin_popcount(m);
  for (int b = 0; b < NB; ++b) {
    const __m512 xb = TailX ? _mm512_maskz_loadu_ps(xmask, x + b * xs) : _mm512_loadu_ps(x + b * xs);
    acc[b] = _mm512_fmadd_ps(w, xb, acc[b]);
  }
}

template <int NB, bool Exact>
RESSA_AVX512 RESSA_INLINE void bm_row_avx512_impl(const uint8_t* mrow, const float* v, int64_t cols,
                                                  const float* x, int64_t xs, float* out) {
  __m512 a0[NB], a1[NB];
  for (int b = 0; b < NB; ++b) a0[b] = a1[b] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 32 <= cols; c += 32) {
    const uint32_t m = load_as<uint32_t>(mrow + c / 8);
    bm_step512<NB, Exact, false>(a0, m & 0xFFFF, v, x + c, xs, 0);
    bm_step512<NB, Exact, false>(a1, m >> 16, v, x + c + 16, xs, 0);
  }
  for (; c < cols; c += 16) {  // padding bits are zero
    const int64_t rem = std::min<int64_t>(16, cols - c);
    const unsigned m = unsigned(load_bytes(mrow + c / 8, (rem + 7) / 8));
    bm_step512<NB, true, true>(a0, m, v, x + c, xs, __mmask16((1u << rem) - 1));
  }
  for (int b = 0; b < NB; ++b) out[b] = _mm512_reduce_add_ps(_mm512_add_ps(a0[b], a1[b]));
}

template <int NB>
RESSA_AVX512 void bm_row_avx512(const uint8_t* mrow, const float* v, const float* vend, int64_t cols,
                                const float* x, int64_t xs, float* out) {
  if (vend - v >= cols + 16) bm_row_avx512_impl<NB, false>(mrow, v, cols, x, xs, out);
  else bm_row_avx512_impl<NB, true>(mrow, v, cols, x, xs, out);
}

// One 32-column (8-group) chunk of a 2:4 row: 16 values, positions in the 32 bits p.
template <int NB, bool Tail>
RESSA_AVX512 RESSA_INLINE void nm24_step512(__m512 (&acc)[NB], uint32_t p, const float* v,
                                            const float* x, int64_t xs, int64_t rem) {
  const __m512i shifts = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i base = _mm512_setr_epi32(0, 0, 4, 4, 8, 8, 12, 12, 16, 16, 20, 20, 24, 24, 28, 28);
  const __m512i idx = _mm512_add_epi32(
      base, _mm512_and_si512(_mm512_srlv_epi32(_mm512_set1_epi32(int32_t(p)), shifts), _mm512_set1_epi32(3)));
  const auto lanes_below = [](int64_t k) { return __mmask16(k >= 16 ? 0xFFFF : k <= 0 ? 0 : (1u << k) - 1); };
  const __m512 w = Tail ? _mm512_maskz_loadu_ps(lanes_below(rem / 2), v) : _mm512_loadu_ps(v);
  for (int b = 0; b < NB; ++b) {
    const float* xb = x + b * xs;
    const __m512 lo = Tail ? _mm512_maskz_loadu_ps(lanes_below(rem), xb) : _mm512_loadu_ps(xb);
    const __m512 hi = Tail ? _mm512_maskz_loadu_ps(lanes_below(rem - 16), xb + 16) : _mm512_loadu_ps(xb + 16);
    acc[b] = _mm512_fmadd_ps(w, _mm512_permutex2var_ps(lo, idx, hi), acc[b]);
  }
}

template <int NB>
RESSA_AVX512 void nm24_row_avx512(const uint8_t* prow, const float* v, const float*, int64_t cols,
                                  const float* x, int64_t xs, float* out) {
  __m512 a0[NB], a1[NB];
  for (int b = 0; b < NB; ++b) a0[b] = a1[b] = _mm512_setzero_ps();
  int64_t c = 0;
  for (; c + 64 <= cols; c += 64) {  // 64 columns = 32 values = 8 position bytes
    const uint64_t p = load_as<uint64_t>(prow + c / 8);
    nm24_step512<NB, false>(a0, uint32_t(p), v + c / 2, x + c, xs, 32);
    nm24_step512<NB, false>(a1, uint32_t(p >> 32), v + c / 2 + 16, x + c + 32, xs, 32);
  }
  for (; c < cols; c += 32) {
    const int64_t rem = std::min<int64_t>(32, cols - c);
    const uint32_t p = uint32_t(load_bytes(prow + c / 8, (rem + 7) / 8));
    if (rem == 32) nm24_step512<NB, false>(a0, p, v + c / 2, x + c, xs, 32);
    else nm24_step512<NB, true>(a0, p, v + c / 2, x + c, xs, rem);
  }
  for (int b = 0; b < NB; ++b) out[b] = _mm512_reduce_add_ps(_mm512_add_ps(a0[b], a1[b]));
}

template <int V>
RESSA_AVX512 void index_row_avx512(const float* v, const int32_t* idx, int64_t nnz, const float* xt,
                                   float* out) {
  constexpr int U = V == 1 ? 4 : 2;
  __m512 acc[U][V];
  for (int u = 0; u < U; ++u)
    for (int q = 0; q < V; ++q) acc[u][q] = _mm512_setzero_ps();
  int64_t j = 0;
  for (; j + U <= nnz; j += U)
    for (int u = 0; u < U; ++u) {
      const __m512 w = _mm512_set1_ps(v[j + u]);
      const float* xr = xt + int64_t(idx[j + u]) * (16 * V);
      for (int q = 0; q < V; ++q) acc[u][q] = _mm512_fmadd_ps(w, _mm512_load_ps(xr + 16 * q), acc[u][q]);
    }
  for (; j < nnz; ++j) {
    const __m512 w = _mm512_set1_ps(v[j]);
    const float* xr = xt + int64_t(idx[j]) * (16 * V);
    for (int q = 0; q < V; ++q) acc[0][q] = _mm512_fmadd_ps(w, _mm512_load_ps(xr + 16 * q), acc[0][q]);
  }
  for (int q = 0; q < V; ++q) {
    for (int u = 1; u < U; ++u) acc[0][q] = _mm512_add_ps(acc[0][q], acc[u][q]);
    _mm512_storeu_ps(out + 16 * q, acc[0][q]);
  }
}

// ---- drivers ------------------------------------------------------------------------------

// Batch rows per block: the index kernel holds up to 4 vectors of batch lanes per weight.
constexpr int64_t kBatchBlock[3] = {64, 32, 64};  // scalar, avx2, avx512

using RowFn = void (*)(const uint8_t*, const float*, const float*, int64_t, const float*, int64_t, float*);
using IndexFn = void (*)(const float*, const int32_t*, int64_t, const float*, float*);
constexpr int kMaxNB[3] = {0, 4, 8};  // batch rows per expand/nm24 call

RowFn bm_row_fn(Isa isa, int nb) {
  static const RowFn avx2[] = {nullptr, bm_row_avx2<1>, bm_row_avx2<2>, bm_row_avx2<3>, bm_row_avx2<4>};
  static const RowFn avx512[] = {nullptr, bm_row_avx512<1>, bm_row_avx512<2>, bm_row_avx512<3>,
                                 bm_row_avx512<4>, bm_row_avx512<5>, bm_row_avx512<6>,
                                 bm_row_avx512<7>, bm_row_avx512<8>};
  return isa == Isa::avx512 ? avx512[nb] : avx2[nb];
}

RowFn nm24_row_fn(Isa isa, int nb) {
  static const RowFn avx2[] = {nullptr, nm24_row_avx2<1>, nm24_row_avx2<2>, nm24_row_avx2<3>, nm24_row_avx2<4>};
  static const RowFn avx512[] = {nullptr, nm24_row_avx512<1>, nm24_row_avx512<2>, nm24_row_avx512<3>,
                                 nm24_row_avx512<4>, nm24_row_avx512<5>, nm24_row_avx512<6>,
                                 nm24_row_avx512<7>, nm24_row_avx512<8>};
  return isa == Isa::avx512 ? avx512[nb] : avx2[nb];
}

IndexFn index_fn(Isa isa, int v) {
  static const IndexFn avx2[] = {nullptr, index_row_avx2<1>, index_row_avx2<2>, index_row_avx2<3>, index_row_avx2<4>};
  static const IndexFn avx512[] = {nullptr, index_row_avx512<1>, index_row_avx512<2>,
                                   index_row_avx512<3>, index_row_avx512<4>};
  return isa == Isa::avx512 ? avx512[v] : avx2[v];
}

// Cost model (cycles per column, measured on Sapphire Rapids, docs/kernels.md): the direct
// kernels cost ~(1 + nb/2) per vector of columns; the index kernel ~(1 + vectors of batch)
// per kept weight. True when the index kernel is expected to win.
bool prefer_index(Isa isa, double density, int64_t nb) {
  if (isa == Isa::scalar) return true;
  const double l = lanes(isa);
  const double direct = (1.0 + 0.5 * double(nb)) / l;
  const double index = density * 0.5 * (1.0 + std::ceil(double(nb) / l));
  return index < direct;
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

// Row ranges for t threads with about equal cost, a row costing nnz + cols/8 units.
std::vector<int64_t> split_rows(int64_t rows, int64_t cols, const int64_t* offsets, int t) {
  std::vector<int64_t> bounds(size_t(t) + 1, rows);
  bounds[0] = 0;
  const auto cost = [&](int64_t r) { return double(offsets ? offsets[r] : 0) + double(r) * double(cols) / 8.0; };
  const double total = cost(rows);
  for (int i = 1; i < t; ++i) {
    int64_t lo = bounds[size_t(i) - 1], hi = rows;  // first row with cost >= i/t of the total
    while (lo < hi) {
      const int64_t mid = (lo + hi) / 2;
      if (cost(mid) < total * i / t) lo = mid + 1;
      else hi = mid;
    }
    bounds[size_t(i)] = lo;
  }
  return bounds;
}

// Per-format access for the driver: row values, kept column indices, the direct row kernel.
struct BitmaskSource {
  const BitmaskMatrix& w;
  const int64_t* offsets() const { return w.row_offsets().data(); }
  const float* values(int64_t r) const { return w.values().data() + w.row_offsets()[size_t(r)]; }
  const float* values_end() const { return w.values().data() + w.values().size(); }
  const uint8_t* meta(int64_t r) const { return w.bitmask().data() + r * w.mask_stride(); }
  RowFn direct(Isa isa, int nb) const { return isa == Isa::scalar ? nullptr : bm_row_fn(isa, nb); }
  int64_t decode(Isa isa, int64_t r, int32_t* idx) const {
    if (isa == Isa::avx512) return decode_bitmask_avx512(meta(r), w.cols(), idx);
    if (isa == Isa::avx2) return decode_bitmask_avx2(meta(r), w.cols(), idx);
    return decode_bitmask_scalar(meta(r), w.cols(), idx);
  }
};

struct NMSource {
  const NMMatrix& w;
  const int64_t* offsets() const { return nullptr; }
  const float* values(int64_t r) const { return w.values().data() + r * w.values_per_row(); }
  const float* values_end() const { return w.values().data() + w.values().size(); }
  const uint8_t* meta(int64_t r) const { return w.positions().data() + r * w.pos_stride(); }
  RowFn direct(Isa isa, int nb) const {
    return isa != Isa::scalar && w.n() == 2 && w.m() == 4 ? nm24_row_fn(isa, nb) : nullptr;
  }
  int64_t decode(Isa, int64_t r, int32_t* idx) const {
    const uint8_t* prow = meta(r);
    if (w.m() == 4 && w.n() == 2) {  // a byte holds 2 groups: a table gives their 4 columns
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
  const std::vector<int64_t> bounds = split_rows(rows, cols, src.offsets(), t);
  for (int64_t b0 = 0; b0 < batch; b0 += kBatchBlock[int(isa)]) {
    const int64_t nb = std::min(kBatchBlock[int(isa)], batch - b0);
    const float* xb = x + b0 * cols;
    float* yb = y + b0 * rows;
    if (src.direct(isa, 1) && !prefer_index(isa, density, nb)) {
      const int max_nb = kMaxNB[int(isa)];
      Pool::get().run(t, [&](int i) {
        float out[8];
        for (int64_t r = bounds[size_t(i)]; r < bounds[size_t(i) + 1]; ++r)
          for (int64_t bb = 0; bb < nb; bb += max_nb) {
            const int k = int(std::min<int64_t>(max_nb, nb - bb));
            src.direct(isa, k)(src.meta(r), src.values(r), src.values_end(), cols, xb + bb * cols, cols, out);
            for (int b = 0; b < k; ++b) yb[(bb + b) * rows + r] = out[b];
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
    std::vector<std::vector<int32_t>> idx(size_t(t), std::vector<int32_t>(size_t(cols + 16)));
    const IndexFn vec = isa == Isa::scalar ? nullptr : index_fn(isa, bp / l);
    Pool::get().run(t, [&](int i) {
      alignas(64) float out[64];
      int32_t* id = idx[size_t(i)].data();
      for (int64_t r = bounds[size_t(i)]; r < bounds[size_t(i) + 1]; ++r) {
        const int64_t n = src.decode(isa, r, id);
        if (vec) vec(src.values(r), id, n, xtp, out);
        else index_row_scalar(src.values(r), id, n, xtp, bp, out);
        for (int64_t b = 0; b < nb; ++b) yb[b * rows + r] = out[b];
      }
    });
  }
}

}  // namespace

const char* to_string(Isa isa) {
  return isa == Isa::avx512 ? "avx512" : isa == Isa::avx2 ? "avx2" : "scalar";
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() { return Isa(std::min(int(detected_isa()), g_max_isa.load())); }
void set_max_isa(Isa isa) { g_max_isa.store(int(isa)); }
void set_force_scalar(bool on) { set_max_isa(on ? Isa::scalar : Isa::avx512); }

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
