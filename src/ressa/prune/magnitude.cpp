// Magnitude pruning: score |W| (the absolute value; the reference code's signed ranking would
// prune every large negative weight first, see method.md §5.6). Kept weights are unchanged.
#include "ressa/prune/mask.h"
#include "ressa/prune/methods.h"

namespace ressa::prune {

// weight [d_out, d_in] -> |W| [d_out, d_in] (float32, or float64 for a float64 weight)
torch::Tensor magnitude_score(const torch::Tensor& weight) {
  auto dt = weight.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
  return weight.to(dt).abs();
}

PruneResult prune_magnitude(const torch::Tensor& weight, const SparsityPattern& p, const MethodOptions& o) {
  auto mask = mask_for(magnitude_score(weight), p, o.granularity);
  return {weight.masked_fill(mask == 0, 0), mask};
}

}  // namespace ressa::prune
