// Core of `ressa prune-tensor`: prune one matrix stored in safetensors files.
#pragma once
#include <string>

#include "ressa/prune/methods.h"

namespace ressa::prune {

// Reads weight_path (tensor "weight" [d_out, d_in]) and inputs_path (tensor "inputs" [n, d_in]),
// both any float dtype (F64/F32/F16/BF16, converted to float32), prunes with prune_matrix and
// writes out_path atomically with "weight" (F32 [d_out, d_in]; updated for sparsegpt) and "mask"
// (U8 [d_out, d_in], 1 = kept), plus __metadata__ {method, pattern}.
// Errors name the file: std::runtime_error for a missing tensor, a non-float dtype, a wrong rank
// or non-finite values; std::invalid_argument when the files do not fit together or the
// request (d_in mismatch, N:M not dividing d_in, n = 0 calibration rows).
void prune_tensor_file(const std::string& weight_path, const std::string& inputs_path, Method method,
                       const SparsityPattern& pattern, const MethodOptions& opts, const std::string& out_path);

}  // namespace ressa::prune
