// Products with dense 16-bit weights, widened in registers: what a Linear layer runs at decode
// time (a few rows of x) when its weight stays in an fp16 / bf16 checkpoint's dtype
// (model::LoadOptions::map_weights), so a step reads 2 bytes per weight instead of widening the
// whole matrix to fp32 first (4 more bytes written and read per weight). Accumulation is fp32,
// in the order the ISA's vector width gives (not bit-equal to BLAS). Torch-free; the caller
// splits the rows across threads.
#pragma once
#include <cstdint>

#include "ressa/sparse/formats.h"
#include "ressa/sparse/kernels.h"

namespace ressa::sparse {

// Most rows of x one call takes (each weight vector is widened once and used for all of them).
constexpr int64_t kHalfGemvMaxBatch = 4;

// y[b, r] = sum_c widen(w[r, c]) * x[b, c] for r in [r0, r1), b < batch (1..kHalfGemvMaxBatch).
// w is (rows, cols) row-major 16-bit values of type t (f16 or bf16); x is (batch, cols); y is
// (batch, rows), row-major. `isa` picks the code path (active_isa() in production).
void half_gemv_rows(Isa isa, ValueType t, const uint16_t* w, int64_t rows, int64_t cols, int64_t r0, int64_t r1,
                    const float* x, int64_t batch, float* y);

}  // namespace ressa::sparse
