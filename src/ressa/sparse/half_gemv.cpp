// Dense 16-bit weight products for a few rows of x (see half_gemv.h).
#include "ressa/sparse/half_gemv.h"

#include <immintrin.h>

#include <type_traits>

#include "ressa/core/error.h"

// GCC 12 warns about the self-initialised _mm512_undefined_*() inside its own AVX-512 headers
// (GCC bug 105593, fixed in 13; kernels.cpp says the same); the file is all kernel code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define RESSA_HG_AVX2 __attribute__((target("avx2,fma,f16c")))
#define RESSA_HG_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))

namespace ressa::sparse {
namespace {

struct F16 {};
struct Bf16 {};

// One row against NB rows of x: each 16 (AVX-512) or 8 (AVX2) weights are widened once and fed
// to NB accumulators; the tail is widened one value at a time.
template <class V, int NB>
RESSA_HG_AVX512 void rows_avx512(const uint16_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1,
                                 const float* x, float* y) {
  const ValueType t = std::is_same_v<V, F16> ? ValueType::f16 : ValueType::bf16;
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* wr = w + r * cols;
    __m512 acc[NB];
    for (int b = 0; b < NB; ++b) acc[b] = _mm512_setzero_ps();
    int64_t c = 0;
    for (; c + 16 <= cols; c += 16) {
      const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wr + c));
      __m512 v;
      if constexpr (std::is_same_v<V, F16>) v = _mm512_cvtph_ps(h);
      else v = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      for (int b = 0; b < NB; ++b) acc[b] = _mm512_fmadd_ps(v, _mm512_loadu_ps(x + b * cols + c), acc[b]);
    }
    for (int b = 0; b < NB; ++b) {
      float s = _mm512_reduce_add_ps(acc[b]);
      for (int64_t j = c; j < cols; ++j) s += from_half(t, wr[j]) * x[b * cols + j];
      y[b * rows + r] = s;
    }
  }
}

RESSA_HG_AVX2 inline float hsum256(__m256 v) {
  const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

template <class V, int NB>
RESSA_HG_AVX2 void rows_avx2(const uint16_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, const float* x,
                             float* y) {
  const ValueType t = std::is_same_v<V, F16> ? ValueType::f16 : ValueType::bf16;
  for (int64_t r = r0; r < r1; ++r) {
    const uint16_t* wr = w + r * cols;
    __m256 acc[NB];
    for (int b = 0; b < NB; ++b) acc[b] = _mm256_setzero_ps();
    int64_t c = 0;
    for (; c + 8 <= cols; c += 8) {
      const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(wr + c));
      __m256 v;
      if constexpr (std::is_same_v<V, F16>) v = _mm256_cvtph_ps(h);
      else v = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      for (int b = 0; b < NB; ++b) acc[b] = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + b * cols + c), acc[b]);
    }
    for (int b = 0; b < NB; ++b) {
      float s = hsum256(acc[b]);
      for (int64_t j = c; j < cols; ++j) s += from_half(t, wr[j]) * x[b * cols + j];
      y[b * rows + r] = s;
    }
  }
}

void rows_scalar(ValueType t, const uint16_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, const float* x,
                 int64_t batch, float* y) {
  for (int64_t r = r0; r < r1; ++r)
    for (int64_t b = 0; b < batch; ++b) {
      float s = 0.0f;
      for (int64_t c = 0; c < cols; ++c) s += from_half(t, w[r * cols + c]) * x[b * cols + c];
      y[b * rows + r] = s;
    }
}

template <class V, int NB>
void dispatch(Isa isa, const uint16_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, const float* x,
              float* y) {
  if (isa == Isa::avx512) rows_avx512<V, NB>(w, rows, cols, r0, r1, x, y);
  else rows_avx2<V, NB>(w, rows, cols, r0, r1, x, y);
}

template <class V>
void dispatch_batch(Isa isa, const uint16_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1, const float* x,
                    int64_t batch, float* y) {
  switch (batch) {
    case 1: return dispatch<V, 1>(isa, w, rows, cols, r0, r1, x, y);
    case 2: return dispatch<V, 2>(isa, w, rows, cols, r0, r1, x, y);
    case 3: return dispatch<V, 3>(isa, w, rows, cols, r0, r1, x, y);
    default: return dispatch<V, 4>(isa, w, rows, cols, r0, r1, x, y);
  }
}

}  // namespace

void half_gemv_rows(Isa isa, ValueType t, const uint16_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1,
                    const float* x, int64_t batch, float* y) {
  RESSA_CHECK_ARG(t == ValueType::f16 || t == ValueType::bf16, "[half_gemv_rows] weights must be f16 or bf16");
  RESSA_CHECK_ARG(batch >= 1 && batch <= kHalfGemvMaxBatch, "[half_gemv_rows] batch ", batch, " outside 1..",
                  kHalfGemvMaxBatch);
  RESSA_CHECK_ARG(0 <= r0 && r0 <= r1 && r1 <= rows && cols >= 0, "[half_gemv_rows] rows [", r0, ", ", r1,
                  ") outside 0..", rows);
  if (isa == Isa::scalar) return rows_scalar(t, w, rows, cols, r0, r1, x, batch, y);
  if (t == ValueType::f16) dispatch_batch<F16>(isa, w, rows, cols, r0, r1, x, batch, y);
  else dispatch_batch<Bf16>(isa, w, rows, cols, r0, r1, x, batch, y);
}

}  // namespace ressa::sparse
