// Wanda pruning (Sun et al. 2023): score |W_ij|·||X_:,j||₂, compared within each output row by
// default (Granularity::Row, the paper) or over the matrix. Kept weights are unchanged.
#include "ressa/prune/mask.h"
#include "ressa/prune/methods.h"

namespace ressa::prune {

// weight [d_out, d_in], stats.col_norm_sq() [d_in] -> |W|·sqrt(col_norm_sq) [d_out, d_in]
torch::Tensor wanda_score(const torch::Tensor& weight, const LayerStats& stats) {
  auto dt = weight.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  auto norm = stats.col_norm_sq().to(weight.device()).sqrt().to(dt);  // [d_in]
  return weight.to(dt).abs() * norm.unsqueeze(0);
}

PruneResult prune_wanda(const torch::Tensor& weight, const LayerStats& stats, const SparsityPattern& p,
                        const MethodOptions& o) {
  auto mask = mask_for(wanda_score(weight, stats), p, o.granularity);
  return {weight.masked_fill(mask == 0, 0), mask};
}

}  // namespace ressa::prune
