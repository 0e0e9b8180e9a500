// Pure mask functions: from a score matrix (higher = more important) to a keep-mask, plus
// sparsity / N:M checks. Masks are uint8 [d_out, d_in], 1 = kept, 0 = pruned.
//
// Tie-breaking is deterministic: scores are ranked with a stable ascending sort, so among equal
// scores the lower column index (Matrix: the lower row-major flat index) is pruned first.
#pragma once
#include <torch/torch.h>

#include "ressa/prune/pattern.h"

namespace ressa::prune {

// Number pruned out of `count` at `ratio`: floor(ratio*count), with a 1e-9 slack so binary
// rounding (0.57*100 = 56.999...) does not lose one.
int64_t prune_count(double ratio, int64_t count);

// score [d_out, d_in] floating, no NaN -> mask with exactly k zeros (the k lowest scores) in
// each row (Row, 0 <= k <= d_in) or in the whole matrix (Matrix, 0 <= k <= numel).
torch::Tensor prune_lowest(const torch::Tensor& score, int64_t k, Granularity g);

// score [d_out, d_in] floating, no NaN -> mask [d_out, d_in] uint8 with exactly
// prune_count(ratio, numel) zeros: chosen within each row (Row; every row prunes the same number
// or one more, see row_spread_mask) or over the whole matrix (Matrix).
torch::Tensor unstructured_mask(const torch::Tensor& score, double ratio, Granularity g);
// Prunes exactly `total` of score's lowest entries, spread over the rows: every row prunes
// total/rows or one more of its own lowest scores; the rows taking the extra one are the `rem`
// rows starting at `first_row` (cyclically), so callers can rotate them between column blocks.
torch::Tensor row_spread_mask(const torch::Tensor& score, int64_t total, int64_t first_row = 0);

// score [d_out, d_in], d_in % m == 0 -> mask with exactly n zeros in every group of m
// consecutive columns of each row (the n lowest scores of the group).
torch::Tensor nm_mask(const torch::Tensor& score, int n, int m);

// Dispatches on the pattern (granularity is ignored for N:M).
torch::Tensor mask_for(const torch::Tensor& score, const SparsityPattern& pattern, Granularity g);

// weight [d_out, d_in]: true iff every group of m consecutive columns holds at least n exact
// zeros. False when d_in is not a multiple of m (such a matrix cannot be N:M).
bool is_nm_valid(const torch::Tensor& weight, int n, int m);

// Fraction of exact zeros in w (0 for an empty tensor).
double sparsity(const torch::Tensor& w);

}  // namespace ressa::prune
