// OWL's layer-wise allocation (see owl.h).
#include "ressa/prune/owl.h"

#include <algorithm>
#include <cmath>

#include "ressa/core/error.h"

namespace ressa::prune {

void OwlOptions::validate() const {
  RESSA_CHECK_ARG(threshold > 0 && std::isfinite(threshold), "[prune] --owl-threshold must be > 0, got ", threshold);
  RESSA_CHECK_ARG(lambda >= 0 && lambda < 1, "[prune] --owl-lambda must be in [0, 1), got ", lambda);
}

double owl_outlier_ratio(const std::vector<OwlLayer>& block, double threshold) {
  RESSA_CHECK_ARG(!block.empty(), "[owl_outlier_ratio] a block without layers");
  torch::NoGradGuard ng;
  std::vector<torch::Tensor> scores;
  for (const auto& l : block) {
    RESSA_CHECK_ARG(l.weight.dim() == 2 && l.col_norm_sq.dim() == 1 && l.col_norm_sq.size(0) == l.weight.size(1),
                    "[owl_outlier_ratio] weight ", l.weight.sizes(), " and input norms ", l.col_norm_sq.sizes(),
                    " do not match");
    auto norm = l.col_norm_sq.to(torch::kFloat64).sqrt().unsqueeze(0);  // [1, in]
    scores.push_back((l.weight.detach().to(torch::kFloat64).abs() * norm.to(l.weight.device())).reshape({-1}));
  }
  auto all = torch::cat(scores);
  const double mean = all.mean().item<double>();
  const int64_t outliers = all.gt(threshold * mean).sum().item<int64_t>();
  return 100.0 * static_cast<double>(outliers) / static_cast<double>(all.numel());
}

std::vector<double> owl_block_shifts(const std::vector<double>& outlier_ratio, const std::vector<double>& block_size,
                                     double lambda) {
  RESSA_CHECK_ARG(!outlier_ratio.empty() && outlier_ratio.size() == block_size.size(),
                  "[owl_block_shifts] need one size per block");
  const auto [lo, hi] = std::minmax_element(outlier_ratio.begin(), outlier_ratio.end());
  const double span = *hi - *lo;
  std::vector<double> r(outlier_ratio.size(), 0.0);
  double weighted = 0, total = 0;
  for (size_t b = 0; b < r.size(); ++b) {
    if (span > 0) r[b] = (outlier_ratio[b] - *lo) / span * 2 * lambda;
    weighted += block_size[b] * r[b];
    total += block_size[b];
  }
  RESSA_CHECK_ARG(total > 0, "[owl_block_shifts] the blocks hold no weights");
  const double mean = weighted / total;
  for (auto& v : r) v = mean - v;
  return r;
}

std::vector<double> owl_block_sparsities(const std::vector<double>& outlier_ratio, const std::vector<double>& block_size,
                                         double target, double lambda) {
  auto s = owl_block_shifts(outlier_ratio, block_size, lambda);
  for (size_t b = 0; b < s.size(); ++b) {
    s[b] += target;
    RESSA_CHECK_ARG(s[b] >= 0 && s[b] < 1, "[prune] OWL gives block ", b, " sparsity ", s[b],
                    ", outside [0, 1); lower --owl-lambda (", lambda, ") or change the sparsity (", target, ")");
  }
  return s;
}

}  // namespace ressa::prune
