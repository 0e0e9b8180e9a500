// DSnoT, "Dynamic Sparse No Training" (Zhang et al. 2024): training-free refinement of a base
// mask. For output row i the expected output error is
//     e_i = E[x]·(W_i - Ŵ_i) = Σ_{j pruned} W_ij·μ_j          (μ = column means of X)
// and each cycle swaps one pruned weight back in (regrow) and one kept weight out (prune):
//   regrow r: among weights pruned by the base mask, the largest W_rj·μ_j / Var_j^p if e > 0,
//             the smallest if e < 0 (the one that cancels most error per unit of input variance);
//   prune  p: unstructured: among weights kept by the base mask whose W·μ has the sign opposite
//             to e (so pruning it also pulls e toward 0), the one with the lowest base score;
//             N:M: the kept weight with the lowest base score in r's M-group (N:M stays valid).
// A swap is made only if it strictly lowers |e_i|; a row stops at the first swap that would not,
// when |e_i| <= update_threshold, when it runs out of candidates, or after max_cycles swaps.
// So the objective Σ_i |e_i| never increases.
//
// Unlike the reference code, each candidate list only shrinks: a regrown weight is never pruned
// again and a weight pruned by DSnoT is never regrown, so no swap is undone (method.md §5.6);
// and the reference's default without_same_sign=True lets |e| grow, which the strict test forbids.
// The pruning score is the base method's score (the reference always uses Wanda's).

#include <algorithm>
#include <cmath>
#include <vector>

#include "ressa/core/error.h"
#include "ressa/model/intraop.h"
#include "ressa/prune/mask.h"
#include "ressa/prune/methods.h"

namespace ressa::prune {

namespace {

// idx sorted by key ascending, ties by lower index (stable).
void sort_by(std::vector<int64_t>& idx, const double* key) {
  std::stable_sort(idx.begin(), idx.end(), [key](int64_t a, int64_t b) { return key[a] < key[b]; });
}

// Views of one output row (all [d_in]).
struct Row {
  const double* metric;  // W_ij·μ_j: what pruning w_ij adds to e_i
  const double* prio;    // metric / Var_j^p: regrow priority
  const double* score;   // base score (lower = prune first)
  uint8_t* mask;         // 1 = kept, updated in place
};

// Refines one row's mask; m = 0 for unstructured, else the N:M group size.
void refine_row(const Row& r, int64_t d_in, int64_t m, const MethodOptions& o) {
  std::vector<int64_t> regrow, prune_pos, prune_neg;
  std::vector<uint8_t> regrown(m ? d_in : 0, 0);
  double e = 0;
  for (int64_t j = 0; j < d_in; ++j) {
    if (!r.mask[j]) {
      regrow.push_back(j);
      e += r.metric[j];
    } else if (!m) {
      (r.metric[j] > 0 ? prune_pos : prune_neg).push_back(j);
    }
  }
  sort_by(regrow, r.prio);
  sort_by(prune_pos, r.score);
  sort_by(prune_neg, r.score);
  int64_t lo = 0, hi = static_cast<int64_t>(regrow.size()) - 1;  // regrow list is consumed from both ends
  size_t next_pos = 0, next_neg = 0;
  for (int cycle = 0; cycle < o.dsnot_max_cycles; ++cycle) {
    if (!(std::abs(e) > o.dsnot_update_threshold) || lo > hi) break;
    const bool high = e > 0;  // e > 0: regrow the most positive contribution, prune a negative one
    const int64_t g = high ? regrow[hi] : regrow[lo];
    int64_t q = -1;
    if (m) {  // lowest-score kept weight of g's group that DSnoT did not regrow itself
      for (int64_t j = g - g % m; j < g - g % m + m; ++j)
        if (r.mask[j] && !regrown[j] && (q < 0 || r.score[j] < r.score[q])) q = j;
    } else {
      auto& list = high ? prune_neg : prune_pos;
      size_t& next = high ? next_neg : next_pos;
      if (next < list.size()) q = list[next++];
    }
    if (q < 0) break;
    const double e_after = e - r.metric[g] + r.metric[q];
    if (!(std::abs(e_after) < std::abs(e))) break;
    r.mask[g] = 1;
    r.mask[q] = 0;
    if (m) regrown[g] = 1;
    e = e_after;
    if (high) --hi; else ++lo;
  }
}

}  // namespace

PruneResult prune_dsnot(const torch::Tensor& weight, const LayerStats& stats, const SparsityPattern& p,
                        const MethodOptions& o) {
  const int64_t d_out = weight.size(0), d_in = weight.size(1);
  torch::Tensor score;
  switch (o.dsnot_base) {
    case Method::Magnitude: score = magnitude_score(weight); break;
    case Method::Wanda: score = wanda_score(weight, stats); break;
    case Method::SparseGPT: score = sparsegpt_score(weight, stats, o.sparsegpt_damp); break;
    case Method::DSnoT: fail_arg("[prune_dsnot] dsnot_base cannot be dsnot");
  }
  auto mask = mask_for(score, p, o.granularity).to(torch::kCPU).contiguous();  // [d_out, d_in] u8
  // The swap search is sequential per row; rows run in parallel on the CPU in float64.
  auto W = weight.to(torch::kCPU, torch::kDouble);
  auto mu = stats.col_mean().to(torch::kCPU);                                            // [d_in]
  auto var = stats.col_var().to(torch::kCPU).clamp_min(1e-12);                          // [d_in]
  auto metric = (W * mu.unsqueeze(0)).contiguous();                                     // [d_out, d_in]
  auto prio = (metric / var.pow(o.dsnot_var_power).unsqueeze(0)).contiguous();        // [d_out, d_in]
  auto sc = score.to(torch::kCPU, torch::kDouble).contiguous();                         // [d_out, d_in]
  const double* pm = metric.data_ptr<double>();
  const double* pp = prio.data_ptr<double>();
  const double* ps = sc.data_ptr<double>();
  uint8_t* pk = mask.data_ptr<uint8_t>();
  const int64_t m = p.is_nm() ? p.m : 0;
  model::intraop_for(0, d_out, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t off = i * d_in;
      refine_row(Row{pm + off, pp + off, ps + off, pk + off}, d_in, m, o);
    }
  });
  mask = mask.to(weight.device());
  return {weight.masked_fill(mask == 0, 0), mask};
}

}  // namespace ressa::prune
