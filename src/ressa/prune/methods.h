// The per-matrix pruning methods (magnitude, Wanda, SparseGPT, DSnoT) behind one entry point,
// prune_matrix(). Each method lives in its own .cpp; the whole-model driver calls prune_matrix
// once per Linear layer with that layer's LayerStats.
#pragma once
#include <torch/torch.h>

#include <string>

#include "ressa/prune/layer_stats.h"
#include "ressa/prune/pattern.h"

namespace ressa::prune {

struct MethodOptions {
  Granularity granularity = Granularity::Row;  // unstructured quota per row or per matrix; for
                                               // SparseGPT: per row / over the whole block, per block
  int sparsegpt_blocksize = 128;      // columns per lazy OBS block (a multiple of M for N:M)
  double sparsegpt_damp = 0.01;       // diagonal damping, as a fraction of mean(diag H)
  // The dtype of SparseGPT's Hessian, its factorisation and update (the driver's LayerStats):
  // kFloat (default: half the memory, as SparseGPT's reference runs on GPUs) or kDouble.
  torch::ScalarType hessian_dtype = torch::kFloat;
  Method dsnot_base = Method::Wanda;  // DSnoT's initial mask: magnitude | wanda | sparsegpt
  int dsnot_max_cycles = 100;         // max swaps per output row
  double dsnot_update_threshold = 0.1;  // a row stops once |E[x]·(W-Ŵ)_row| <= this
  double dsnot_var_power = 1.0;       // regrow priority = W_ij·E[x_j] / Var[x_j]^p (reference: 1)

  void validate() const;  // throws std::invalid_argument naming the bad field
};

// "float32" -> kFloat, "float64" -> kDouble (--hessian-dtype); invalid_argument otherwise.
torch::ScalarType parse_hessian_dtype(const std::string& s);
std::string hessian_dtype_name(torch::ScalarType t);  // "float32" / "float64"

struct PruneResult {
  torch::Tensor weight;  // [d_out, d_in], input dtype/device; pruned (SparseGPT: also updated)
  torch::Tensor mask;    // [d_out, d_in] uint8, 1 = kept; weight is exactly 0 where mask is 0
};

// weight [d_out, d_in] floating, finite. stats: the layer's calibration statistics with
// stats.d_in() == d_in and nsamples() > 0 (not read by magnitude; SparseGPT, and DSnoT on a
// SparseGPT base, need stats built with need_hessian). N:M needs d_in % M == 0.
// A dense pattern (ratio 0) returns the weight unchanged and an all-ones mask.
PruneResult prune_matrix(const torch::Tensor& weight, const LayerStats& stats, Method method,
                         const SparsityPattern& pattern, const MethodOptions& opts = {});

// ---- the methods (called by prune_matrix after validation) ----------------------------------

// Scores [d_out, d_in] (higher = keep); float32, or float64 for a float64 weight.
torch::Tensor magnitude_score(const torch::Tensor& weight);                         // |W|
torch::Tensor wanda_score(const torch::Tensor& weight, const LayerStats& stats);    // |W|·||X_j||₂
// OBS saliency without the update: W_ij² / [H⁻¹]_jj², dead input columns (H_jj = 0) score 0.
torch::Tensor sparsegpt_score(const torch::Tensor& weight, const LayerStats& stats, double damp);

PruneResult prune_magnitude(const torch::Tensor& weight, const SparsityPattern& p, const MethodOptions& o);
PruneResult prune_wanda(const torch::Tensor& weight, const LayerStats& stats, const SparsityPattern& p,
                        const MethodOptions& o);
PruneResult prune_sparsegpt(const torch::Tensor& weight, const LayerStats& stats, const SparsityPattern& p,
                            const MethodOptions& o);
PruneResult prune_dsnot(const torch::Tensor& weight, const LayerStats& stats, const SparsityPattern& p,
                        const MethodOptions& o);

// Upper Cholesky factor U of H⁻¹ (H⁻¹ = UᵀU) as sparsegpt.py computes it: H [d_in, d_in] is
// copied, dead diagonal entries are set to 1, damp·mean(diag H) is added to the diagonal, and the
// damping is multiplied by 10 (up to 4 times) if a Cholesky factorisation fails.
// Returns U [d_in, d_in] (float32 for a float32 H, else float64) and, in *dead, the bool [d_in]
// dead-column flags.
torch::Tensor sparsegpt_hinv_factor(const torch::Tensor& H, double damp, torch::Tensor* dead);

}  // namespace ressa::prune
