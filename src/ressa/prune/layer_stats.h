// Per-layer calibration statistics (the add_batch / prune / free pattern of wanda and
// sparsegpt.py) and the layer reconstruction error used to judge a pruned matrix.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace ressa::prune {

// Accumulates statistics of a Linear layer's inputs X over calibration batches. The statistics
// are kept in float64 (the Hessian in hessian_dtype) on the device of the first batch; n counts
// rows (tokens), not sequences.
class LayerStats {
 public:
  // need_hessian: also accumulate H = 2/n XᵀX ([d_in, d_in], needed by SparseGPT) in
  // hessian_dtype (kDouble or kFloat: half the memory of a d_in² matrix, which is 0.5 GB in float32
  // for a 7B model's down_proj; SparseGPT then factorises and updates in that dtype too).
  // Without it, a systematic sample of at most kSampleRows rows of X is kept instead (every
  // stride-th row, the stride doubling whenever the sample fills: rows from every batch, the
  // same rows for the same inputs), enough to measure the layer's reconstruction error without
  // the d_in² Hessian (Wanda, magnitude: docs/method.md §1 "Layer error").
  static constexpr int64_t kSampleRows = 512;
  // add_batch takes a batch in chunks of at most this many values (8 Mi: 64 MB in float64); the
  // statistics are the same up to rounding, whatever the chunking (Chan's merge is exact).
  static constexpr int64_t kChunkValues = int64_t{1} << 23;
  LayerStats(int64_t d_in, bool need_hessian, torch::ScalarType hessian_dtype = torch::kDouble);

  // x [..., d_in], any floating dtype; rows are x.reshape(-1, d_in). Empty batches are ignored.
  void add_batch(const torch::Tensor& x);

  int64_t d_in() const { return d_in_; }
  int64_t nsamples() const { return n_; }  // rows seen so far
  bool has_hessian() const { return need_hessian_ && H_.defined(); }

  torch::Tensor col_norm_sq() const;  // [d_in] f64: ||X_:,j||², summed over all n rows (Wanda)
  torch::Tensor col_mean() const;     // [d_in] f64: E[x_j] (DSnoT)
  torch::Tensor col_var() const;      // [d_in] f64: population variance of x_j (DSnoT)
  torch::Tensor hessian() const;      // [d_in, d_in] hessian_dtype: 2/n XᵀX (running average as sparsegpt.py)
  void free_hessian();                // drop H once the layer is pruned
  torch::Tensor sample() const;       // [m, d_in] f64, m <= kSampleRows (undefined with a Hessian)
  // recon_error_gram over the Hessian when one is kept (exact over all n rows), else recon_error
  // over the sample.
  double layer_error(const torch::Tensor& w, const torch::Tensor& w_pruned) const;

 private:
  void require_rows(const char* fn) const;
  void add_rows(const torch::Tensor& x);  // x [k, d_in]: one chunk of add_batch

  int64_t d_in_;
  bool need_hessian_;
  torch::ScalarType hessian_dtype_;
  int64_t n_ = 0;
  torch::Tensor sum_sq_, mean_, m2_;  // [d_in] f64; m2_ = Σ (x - mean)², merged per batch (Chan)
  torch::Tensor H_;                   // [d_in, d_in] hessian_dtype_
  std::vector<torch::Tensor> sample_;  // kept rows, each [d_in] f64 (no Hessian)
  int64_t stride_ = 1;                 // row i (0-based over all batches) is kept when i % stride_ == 0
};

// Relative layer reconstruction error ||XWᵀ - XŴᵀ||² / ||XWᵀ||² for w, w_pruned [d_out, d_in]
// and x [..., d_in]. Computed in float64; 0 when both are 0, +inf when only XWᵀ is 0.
double recon_error(const torch::Tensor& w, const torch::Tensor& w_pruned, const torch::Tensor& x);

// The same error from a Gram matrix G = XᵀX [d_in, d_in] (or any positive multiple of it, such
// as LayerStats::hessian()): tr((W-Ŵ) G (W-Ŵ)ᵀ) / tr(W G Wᵀ). Lets a driver score a layer
// without keeping X. Computed in float64, or in float32 (sums in float64) for a float32 G.
double recon_error_gram(const torch::Tensor& w, const torch::Tensor& w_pruned, const torch::Tensor& gram);

}  // namespace ressa::prune
