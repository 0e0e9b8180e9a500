// prune_matrix(): validates a pruning request once, then dispatches to the method.
#include "ressa/prune/methods.h"

#include <cmath>

#include "ressa/core/error.h"
#include "ressa/prune/mask.h"

namespace ressa::prune {

void MethodOptions::validate() const {
  RESSA_CHECK_ARG(sparsegpt_blocksize > 0, "[MethodOptions] sparsegpt_blocksize must be > 0, got ", sparsegpt_blocksize);
  RESSA_CHECK_ARG(std::isfinite(sparsegpt_damp) && sparsegpt_damp >= 0,
                  "[MethodOptions] sparsegpt_damp must be finite and >= 0, got ", sparsegpt_damp);
  RESSA_CHECK_ARG(dsnot_base != Method::DSnoT, "[MethodOptions] dsnot_base must be magnitude, wanda or sparsegpt, got dsnot");
  RESSA_CHECK_ARG(dsnot_max_cycles >= 0, "[MethodOptions] dsnot_max_cycles must be >= 0, got ", dsnot_max_cycles);
  RESSA_CHECK_ARG(std::isfinite(dsnot_update_threshold) && dsnot_update_threshold >= 0,
                  "[MethodOptions] dsnot_update_threshold must be finite and >= 0, got ", dsnot_update_threshold);
  RESSA_CHECK_ARG(std::isfinite(dsnot_var_power), "[MethodOptions] dsnot_var_power must be finite, got ", dsnot_var_power);
  RESSA_CHECK_ARG(hessian_dtype == torch::kFloat || hessian_dtype == torch::kDouble,
                  "[MethodOptions] hessian_dtype must be float32 or float64, got ", hessian_dtype);
}

torch::ScalarType parse_hessian_dtype(const std::string& s) {
  if (s == "float32") return torch::kFloat;
  if (s == "float64") return torch::kDouble;
  fail_arg("[prune] unknown --hessian-dtype '", s, "' (expected float32 or float64)");
}

std::string hessian_dtype_name(torch::ScalarType t) { return t == torch::kDouble ? "float64" : "float32"; }

PruneResult prune_matrix(const torch::Tensor& weight, const LayerStats& stats, Method method,
                         const SparsityPattern& pattern, const MethodOptions& opts) {
  opts.validate();
  RESSA_CHECK_ARG(weight.defined() && weight.dim() == 2, "[prune_matrix] weight must be 2-D [d_out, d_in], got ",
                  weight.defined() ? weight.sizes() : c10::IntArrayRef{});
  RESSA_CHECK_ARG(weight.is_floating_point(), "[prune_matrix] weight must be floating point, got ", weight.scalar_type());
  RESSA_CHECK_ARG(weight.isfinite().all().item<bool>(), "[prune_matrix] weight ", weight.sizes(),
                  " contains NaN or Inf");
  const int64_t d_in = weight.size(1);
  if (pattern.is_nm()) {
    RESSA_CHECK_ARG(d_in % pattern.m == 0, "[prune_matrix] pattern ", pattern.to_string(), " needs d_in divisible by ",
                    pattern.m, ", got weight ", weight.sizes());
  } else {
    RESSA_CHECK_ARG(pattern.ratio >= 0 && pattern.ratio < 1, "[prune_matrix] sparsity ratio must be in [0, 1), got ",
                    pattern.ratio);
  }
  if (pattern.is_dense()) return {weight.clone(), torch::ones(weight.sizes(), weight.options().dtype(torch::kUInt8))};
  if (method != Method::Magnitude) {
    RESSA_CHECK_ARG(stats.d_in() == d_in, "[prune_matrix] ", to_string(method), ": stats are for d_in = ", stats.d_in(),
                    " but weight is ", weight.sizes());
    RESSA_CHECK_ARG(stats.nsamples() > 0, "[prune_matrix] ", to_string(method),
                    " needs calibration inputs, got 0 rows (empty calibration)");
  }
  switch (method) {
    case Method::Magnitude: return prune_magnitude(weight, pattern, opts);
    case Method::Wanda: return prune_wanda(weight, stats, pattern, opts);
    case Method::SparseGPT: return prune_sparsegpt(weight, stats, pattern, opts);
    case Method::DSnoT: return prune_dsnot(weight, stats, pattern, opts);
  }
  fail_arg("[prune_matrix] invalid method ", static_cast<int>(method));
}

}  // namespace ressa::prune
