// CPU kernels for sparse weight x dense activations, y = x W^T as in a Linear layer, for the
// formats in formats.h, plus a float64 dense reference. Runtime dispatch between a portable
// scalar path, AVX2+FMA and AVX-512F (the library is compiled for baseline x86-64), from the CPU
// features of core/cpu_info.h. The environment variable RESSA_ISA=scalar|avx2|avx512 caps the
// dispatch at that path for the whole process (tests and comparisons of the paths on one machine);
// naming a path this CPU cannot run is an error, not a silent fallback.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "ressa/core/cpu_info.h"
#include "ressa/sparse/formats.h"

namespace ressa::sparse {

enum class Isa { scalar, avx2, avx512 };
const char* to_string(Isa isa);  // "scalar", "avx2", "avx512"
// The inverse of to_string; throws std::invalid_argument for any other name.
Isa parse_isa(const std::string& s);
// The best path a CPU with these features runs: avx2 needs AVX2, FMA, F16C, POPCNT, BMI1 and
// BMI2; avx512 needs those and AVX-512F; scalar runs anywhere.
Isa best_isa(const CpuFeatures& cpu);
// The highest path the kernels may use when RESSA_ISA has the value ressa_isa (nullptr or "": not
// set): best_isa(cpu) when not set, else the path it names. Throws std::invalid_argument naming
// RESSA_ISA, the value and what the CPU supports when the name is unknown or the CPU cannot run it.
Isa isa_limit(const char* ressa_isa, const CpuFeatures& cpu);
// The best path this process may use: isa_limit(getenv("RESSA_ISA"), cpu_features()), decided on
// the first call that succeeds (each call throws while RESSA_ISA is bad, the kernels included).
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
