// CPU kernels for sparse weight x dense activations, y = x W^T as in a Linear layer, for the
// formats in formats.h, plus a float64 dense reference. Runtime dispatch between a portable
// scalar path, AVX2+FMA and AVX-512F (the library is compiled for baseline x86-64).
#pragma once
#include <cstdint>
#include <functional>

#include "ressa/sparse/formats.h"

namespace ressa::sparse {

enum class Isa { scalar, avx2, avx512 };
const char* to_string(Isa isa);
// Best instruction set this CPU (and OS) supports.
Isa detected_isa();
// What the kernels use now: min(detected_isa(), the cap set below).
Isa active_isa();
// Caps the dispatch process-wide (tests and benchmarks compare paths); default: no cap.
void set_max_isa(Isa isa);
// set_max_isa(Isa::scalar) when on, removes the cap when off.
void set_force_scalar(bool on);

// Either value type (f32 or bf16; bf16 weights are widened, accumulation is fp32).
// w is (rows, cols); x is (batch, cols) row-major; y is (batch, rows) row-major and is
// overwritten: y[b, r] = sum_c w[r, c] * x[b, c]. Any batch >= 0 (blocks of up to 64 reuse
// each weight load); threads >= 1 split the rows (the caller plus a small persistent pool, or the
// runner below).
void bitmask_matmul(const BitmaskMatrix& w, const float* x, int64_t batch, float* y, int threads);
void nm_matmul(const NMMatrix& w, const float* x, int64_t batch, float* y, int threads);

// Where the kernels' threads come from. By default a small persistent pool of their own; a
// runner replaces it: runner(threads, body) must call body(0) ... body(threads - 1), at most
// `threads` of them at once, and return when all have returned (the bodies share the call's
// tasks, so running them one after another is correct, only slower). The torch layer installs
// one on torch's intra-op pool (model/device.cpp) so that a model's sparse layers and its torch
// ops use the same threads. nullptr restores the own pool.
using ParallelRunner = void (*)(int threads, const std::function<void(int)>& body);
void set_parallel_runner(ParallelRunner runner);

// Naive reference with float64 accumulation: w (rows, cols), x (batch, cols), y (batch, rows).
void dense_matmul_ref(const float* w, int64_t rows, int64_t cols, const float* x, int64_t batch,
                      float* y);

}  // namespace ressa::sparse
