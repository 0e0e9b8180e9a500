// OWL, outlier-weighed layer-wise sparsity (Yin et al., ICML 2024; docs/method.md "Allocation"):
// blocks whose weights meet more outlier activations get less sparsity. The two steps are
// separate so each can be checked against the float64 reference (tests/reference/owl_reference.py).
#pragma once
#include <torch/torch.h>

#include <vector>

namespace ressa::prune {

struct OwlOptions {
  double threshold = 5.0;  // M: an entry is an outlier above M x the block's mean score
  double lambda = 0.08;    // the block sparsities span [s - lambda, s + lambda] around the mean
  void validate() const;   // throws std::invalid_argument naming the bad field
};

// One layer's contribution to its block: the weight W [out, in] and the squared norms of its
// calibration inputs' columns, ||X_j||² [in] (LayerStats::col_norm_sq).
struct OwlLayer {
  torch::Tensor weight;
  torch::Tensor col_norm_sq;
};

// The block's layer-wise outlier ratio D, in percent: of all scores |W_ij|·||X_j|| of the block's
// layers together, the share above M x their mean. Computed in float64.
double owl_outlier_ratio(const std::vector<OwlLayer>& block, double threshold);

// Each block's shift of sparsity from the blocks' outlier ratios D_b and sizes n_b (weights
// pruned in the block): r_b = (D_b - min D) / (max D - min D) · 2λ (all 0 when every D_b is
// equal), shift_b = Σ n_b r_b / Σ n_b - r_b, so the size-weighted mean shift is exactly 0.
std::vector<double> owl_block_shifts(const std::vector<double>& outlier_ratio, const std::vector<double>& block_size,
                                     double lambda);

// OWL's block sparsities for a tower pruned to `target` on average: target + shift_b. Throws
// std::invalid_argument when a block would leave [0, 1).
std::vector<double> owl_block_sparsities(const std::vector<double>& outlier_ratio, const std::vector<double>& block_size,
                                         double target, double lambda);

}  // namespace ressa::prune
