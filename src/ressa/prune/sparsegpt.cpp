// SparseGPT (Frantar & Alistarh 2023, sparsegpt.py): blocked OBS sweep over the input columns.
// Each pruned weight's error is spread over the not-yet-visited columns of its row through the
// upper Cholesky factor of H⁻¹, so kept weights change. Everything runs in the Hessian's dtype
// (float64, or float32 with --hessian-dtype float32) on the weight's device; the result is cast
// back to the weight's dtype.
//
// Differences from sparsegpt.py, both deliberate:
//  - unstructured: sparsegpt.py prunes `tmp <= sorted(tmp)[int(numel*s)]` per block, i.e. one
//    weight more than the quota (and more on ties). Here each block prunes exactly its quota,
//    floor(s·d_out·i2) - floor(s·d_out·i1) over the block, chosen over the whole block
//    (Granularity::Matrix, sparsegpt.py's choice) or spread evenly over the rows
//    (Granularity::Row), so every matrix prunes exactly floor(s·numel).
//  - a failed Cholesky is retried with 10x the damping (sparsegpt.py raises).
#include "ressa/core/error.h"
#include "ressa/prune/mask.h"
#include "ressa/prune/methods.h"

namespace ressa::prune {

using torch::indexing::None;
using torch::indexing::Slice;

torch::Tensor sparsegpt_hinv_factor(const torch::Tensor& H_in, double damp, torch::Tensor* dead_out) {
  const int64_t d = H_in.size(0);
  RESSA_CHECK_ARG(H_in.dim() == 2 && H_in.size(1) == d, "[sparsegpt_hinv_factor] H must be square, got ", H_in.sizes());
  // float32 stays float32 (--hessian-dtype); anything else is factorised in float64.
  auto H = H_in.to(H_in.scalar_type() == torch::kFloat ? torch::kFloat : torch::kDouble).clone();
  RESSA_CHECK(H.isfinite().all().item<bool>(), "[sparsegpt_hinv_factor] Hessian [", d, ", ", d,
              "] contains NaN or Inf (non-finite calibration inputs?)");
  auto diag = H.diagonal();
  auto dead = diag == 0;  // inputs that were always 0: their weights cannot matter
  diag.masked_fill_(dead, 1.0);
  const double mean_diag = diag.mean().item<double>();
  double lambda = damp * mean_diag;
  for (int attempt = 0; attempt < 5; ++attempt) {
    auto Hd = H.clone();
    Hd.diagonal().add_(lambda);
    auto [L, info] = torch::linalg_cholesky_ex(Hd);
    if (info.item<int64_t>() == 0) {
      auto [U, info2] = torch::linalg_cholesky_ex(torch::cholesky_inverse(L), /*upper=*/true);
      if (info2.item<int64_t>() == 0) {
        if (dead_out) *dead_out = dead;
        return U;
      }
    }
    lambda = lambda > 0 ? lambda * 10 : 0.01 * mean_diag;
  }
  fail("[sparsegpt_hinv_factor] Hessian [", d, ", ", d, "] is not positive definite even with damping ",
       lambda / 10, " (", damp, " x mean diag ", mean_diag, " raised 10x four times); calibration inputs degenerate?");
}

torch::Tensor sparsegpt_score(const torch::Tensor& weight, const LayerStats& stats, double damp) {
  torch::Tensor dead;
  auto U = sparsegpt_hinv_factor(stats.hessian().to(weight.device()), damp, &dead);
  auto W = weight.to(U.scalar_type()).masked_fill(dead.unsqueeze(0), 0.0);
  return W.square() / U.diagonal().square().unsqueeze(0);  // [d_out, d_in]
}

PruneResult prune_sparsegpt(const torch::Tensor& weight, const LayerStats& stats, const SparsityPattern& p,
                            const MethodOptions& o) {
  const int64_t d_out = weight.size(0), d_in = weight.size(1);
  const int64_t bs = o.sparsegpt_blocksize;
  RESSA_CHECK_ARG(!p.is_nm() || bs % p.m == 0, "[prune_sparsegpt] sparsegpt_blocksize (", bs,
                  ") must be a multiple of M for pattern ", p.to_string());
  torch::Tensor dead;
  auto U = sparsegpt_hinv_factor(stats.hessian().to(weight.device()), o.sparsegpt_damp, &dead);  // [d_in, d_in]
  auto W = weight.to(U.scalar_type()).masked_fill(dead.unsqueeze(0), 0.0);                      // [d_out, d_in]
  auto pruned = torch::zeros({d_out, d_in}, W.options().dtype(torch::kBool));

  for (int64_t i1 = 0; i1 < d_in; i1 += bs) {
    const int64_t i2 = std::min(i1 + bs, d_in), count = i2 - i1;
    auto W1 = W.index({Slice(), Slice(i1, i2)}).clone();    // [d_out, count], updated in place
    auto Q1 = torch::zeros_like(W1);                         // pruned block
    auto Err1 = torch::zeros_like(W1);                       // (w - q) / d per column
    auto Hinv1 = U.index({Slice(i1, i2), Slice(i1, i2)});    // [count, count]
    auto d1 = Hinv1.diagonal();                              // [count]
    torch::Tensor mask1;                                     // [d_out, count] bool, true = prune
    if (!p.is_nm()) {
      auto tmp = W1.square() / d1.square().unsqueeze(0);
      // This block's share of the matrix total, so the matrix prunes exactly floor(s·numel).
      const int64_t k = prune_count(p.ratio, d_out * i2) - prune_count(p.ratio, d_out * i1);
      // Row: spread over the rows (k/d_out each, the remainder on rows rotating block to block).
      mask1 = (o.granularity == Granularity::Row ? row_spread_mask(tmp, k, (i1 / bs) * (k % d_out))
                                                 : prune_lowest(tmp, k, Granularity::Matrix)) == 0;
    } else {
      mask1 = torch::zeros_like(W1, W1.options().dtype(torch::kBool));
    }
    for (int64_t i = 0; i < count; ++i) {
      if (p.is_nm() && i % p.m == 0) {  // choose this M-group's N zeros from the updated weights
        auto tmp = W1.index({Slice(), Slice(i, i + p.m)}).square() / d1.index({Slice(i, i + p.m)}).square().unsqueeze(0);
        mask1.index({Slice(), Slice(i, i + p.m)}).copy_(nm_mask(tmp, p.n, p.m) == 0);
      }
      auto w = W1.select(1, i);                            // [d_out]
      auto q = w.masked_fill(mask1.select(1, i), 0.0);     // [d_out]
      Q1.select(1, i).copy_(q);
      auto err = (w - q) / Hinv1.index({i, i});            // [d_out]
      // OBS update of this and the later columns of the block: W1[:, i:] -= err ⊗ Hinv1[i, i:]
      W1.index({Slice(), Slice(i, None)}).sub_(torch::outer(err, Hinv1.index({i, Slice(i, None)})));
      Err1.select(1, i).copy_(err);
    }
    W.index_put_({Slice(), Slice(i1, i2)}, Q1);
    pruned.index_put_({Slice(), Slice(i1, i2)}, mask1);
    if (i2 < d_in)  // lazy batch update of all later columns: W[:, i2:] -= Err1 · Hinv[i1:i2, i2:]
      W.index({Slice(), Slice(i2, None)}).sub_(torch::matmul(Err1, U.index({Slice(i1, i2), Slice(i2, None)})));
  }
  auto mask = pruned.logical_not().to(torch::kUInt8);
  return {W.masked_fill(pruned, 0.0).to(weight.scalar_type()), mask};
}

}  // namespace ressa::prune
