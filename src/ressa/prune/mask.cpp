// Mask selection (unstructured per row / per matrix, N:M) by stable sorting of scores.
#include "ressa/prune/mask.h"

#include <cmath>

#include "ressa/core/error.h"

namespace ressa::prune {

namespace {
void check_score(const torch::Tensor& score, const char* fn) {
  RESSA_CHECK_ARG(score.defined() && score.dim() == 2, "[", fn, "] score must be 2-D [d_out, d_in], got ",
                  score.defined() ? score.sizes() : c10::IntArrayRef{});
  RESSA_CHECK_ARG(score.is_floating_point(), "[", fn, "] score must be floating point, got ", score.scalar_type());
  RESSA_CHECK_ARG(!score.isnan().any().item<bool>(), "[", fn, "] score contains NaN");
}

// Indices of the k lowest entries along the last dim, stable (ties: lower index first).
torch::Tensor lowest_k(const torch::Tensor& s, int64_t k) {
  auto order = std::get<1>(torch::sort(s, /*stable=*/true, /*dim=*/-1, /*descending=*/false));
  return order.narrow(-1, 0, k);
}
}  // namespace

int64_t prune_count(double ratio, int64_t count) {
  return static_cast<int64_t>(std::floor(ratio * static_cast<double>(count) + 1e-9));
}

torch::Tensor prune_lowest(const torch::Tensor& score, int64_t k, Granularity g) {
  check_score(score, "prune_lowest");
  const int64_t count = g == Granularity::Row ? score.size(1) : score.numel();
  RESSA_CHECK_ARG(k >= 0 && k <= count, "[prune_lowest] k must be in [0, ", count, "] for score ", score.sizes(),
                  " (", to_string(g), "), got ", k);
  auto mask = torch::ones(score.sizes(), score.options().dtype(torch::kUInt8));
  if (k == 0) return mask;
  if (g == Granularity::Row)
    mask.scatter_(1, lowest_k(score, k), 0);
  else
    mask.view(-1).index_fill_(0, lowest_k(score.reshape(-1), k), 0);
  return mask;
}

torch::Tensor unstructured_mask(const torch::Tensor& score, double ratio, Granularity g) {
  check_score(score, "unstructured_mask");
  RESSA_CHECK_ARG(ratio >= 0 && ratio < 1, "[unstructured_mask] ratio must be in [0, 1), got ", ratio);
  if (g == Granularity::Matrix) return prune_lowest(score, prune_count(ratio, score.numel()), g);
  // Per row: the matrix prunes exactly floor(ratio * numel) weights, spread so that every row
  // prunes k or k+1 of its lowest scores. A plain floor per row would fall short
  // (0.7 * 128 -> 89 of 128 = 69.5%).
  return row_spread_mask(score, prune_count(ratio, score.numel()));
}

torch::Tensor row_spread_mask(const torch::Tensor& score, int64_t total, int64_t first_row) {
  check_score(score, "row_spread_mask");
  const int64_t rows = score.size(0);
  RESSA_CHECK_ARG(total >= 0 && total <= score.numel(), "[row_spread_mask] total must be in [0, ", score.numel(),
                  "], got ", total);
  const int64_t k = total / rows, rem = total % rows;
  auto order = std::get<1>(torch::sort(score, /*stable=*/true, /*dim=*/1, /*descending=*/false));
  auto quota = torch::full({rows, 1}, k, torch::kInt64);
  if (rem > 0) {
    auto extra = (torch::arange(rows, torch::kInt64) - first_row).remainder(rows).lt(rem).to(torch::kInt64);
    quota.add_(extra.unsqueeze(1));
  }
  auto ranks = torch::arange(score.size(1), torch::kInt64).unsqueeze(0).expand_as(order);
  auto keep_sorted = ranks.ge(quota).to(torch::kUInt8);
  auto mask = torch::empty_like(keep_sorted);
  mask.scatter_(1, order, keep_sorted);
  return mask;
}

torch::Tensor nm_mask(const torch::Tensor& score, int n, int m) {
  check_score(score, "nm_mask");
  RESSA_CHECK_ARG(n > 0 && m > n, "[nm_mask] need 0 < n < m, got ", n, ":", m);
  const int64_t d_out = score.size(0), d_in = score.size(1);
  RESSA_CHECK_ARG(d_in % m == 0, "[nm_mask] d_in must be a multiple of M=", m, ", got score ", score.sizes());
  auto groups = score.reshape({d_out, d_in / m, m});
  auto mask = torch::ones(groups.sizes(), score.options().dtype(torch::kUInt8));
  mask.scatter_(2, lowest_k(groups, n), 0);
  return mask.reshape({d_out, d_in});
}

torch::Tensor mask_for(const torch::Tensor& score, const SparsityPattern& pattern, Granularity g) {
  if (pattern.is_nm()) return nm_mask(score, pattern.n, pattern.m);
  return unstructured_mask(score, pattern.ratio, g);
}

bool is_nm_valid(const torch::Tensor& weight, int n, int m) {
  RESSA_CHECK_ARG(weight.defined() && weight.dim() == 2, "[is_nm_valid] weight must be 2-D, got ",
                  weight.defined() ? weight.sizes() : c10::IntArrayRef{});
  RESSA_CHECK_ARG(n > 0 && m > n, "[is_nm_valid] need 0 < n < m, got ", n, ":", m);
  if (weight.size(1) % m != 0) return false;
  if (weight.numel() == 0) return true;
  auto zeros = (weight == 0).reshape({weight.size(0), weight.size(1) / m, m}).sum(2);
  return zeros.min().item<int64_t>() >= n;
}

double sparsity(const torch::Tensor& w) {
  if (!w.defined() || w.numel() == 0) return 0.0;
  return (w == 0).sum().item<double>() / static_cast<double>(w.numel());
}

}  // namespace ressa::prune
