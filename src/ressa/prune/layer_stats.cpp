// LayerStats accumulation (column norms, means, variances, Hessian) and reconstruction errors.
#include "ressa/prune/layer_stats.h"

#include <algorithm>
#include <limits>

#include "ressa/core/error.h"

namespace ressa::prune {

LayerStats::LayerStats(int64_t d_in, bool need_hessian, torch::ScalarType hessian_dtype)
    : d_in_(d_in), need_hessian_(need_hessian), hessian_dtype_(hessian_dtype) {
  RESSA_CHECK_ARG(d_in > 0, "[LayerStats] d_in must be positive, got ", d_in);
  RESSA_CHECK_ARG(hessian_dtype == torch::kDouble || hessian_dtype == torch::kFloat,
                  "[LayerStats] hessian_dtype must be float32 or float64, got ", hessian_dtype);
}

void LayerStats::add_batch(const torch::Tensor& x) {
  RESSA_CHECK_ARG(x.defined() && x.dim() >= 1 && x.size(-1) == d_in_, "[LayerStats::add_batch] expected x [..., ",
                  d_in_, "], got ", x.defined() ? x.sizes() : c10::IntArrayRef{});
  RESSA_CHECK_ARG(x.is_floating_point(), "[LayerStats::add_batch] x must be floating point, got ", x.scalar_type());
  // In chunks of at most kChunkValues values: the float64 copies of a whole calibration batch of
  // a 7B down_proj's inputs (10k rows x 11008) were 0.9 GB each, three alive at once.
  auto all = x.detach().reshape({-1, d_in_});
  const int64_t chunk = std::max<int64_t>(1, kChunkValues / d_in_);
  for (int64_t r = 0; r < all.size(0); r += chunk) add_rows(all.slice(0, r, std::min(all.size(0), r + chunk)));
}

void LayerStats::add_rows(const torch::Tensor& x) {
  auto rows = x.to(torch::kDouble);  // [k, d_in]
  const int64_t k = rows.size(0);
  if (k == 0) return;
  if (n_ == 0) {
    auto opt = rows.options();
    sum_sq_ = torch::zeros({d_in_}, opt);
    mean_ = torch::zeros({d_in_}, opt);
    m2_ = torch::zeros({d_in_}, opt);
    if (need_hessian_) H_ = torch::zeros({d_in_, d_in_}, opt.dtype(hessian_dtype_));
  }
  RESSA_CHECK_ARG(rows.device() == sum_sq_.device(), "[LayerStats::add_batch] batch on ", rows.device(),
                  " but statistics live on ", sum_sq_.device());
  // Chan et al. merge of (n, mean, M2) with the batch's (k, mean_b, M2_b): stable variance.
  auto mean_b = rows.mean(0);
  auto m2_b = (rows - mean_b).square().sum(0);
  auto delta = mean_b - mean_;
  const double nk = static_cast<double>(n_) + k;
  mean_ += delta * (k / nk);
  m2_ += m2_b + delta.square() * (static_cast<double>(n_) * k / nk);
  sum_sq_ += rows.square().sum(0);
  if (H_.defined()) {
    // sparsegpt.py: H *= n/(n+k); n += k; H += (sqrt(2/n) X)ᵀ(sqrt(2/n) X)  ->  H = 2/n XᵀX.
    H_ *= static_cast<double>(n_) / nk;
    auto xh = hessian_dtype_ == torch::kDouble ? rows : x.to(hessian_dtype_);
    H_.addmm_(xh.t(), xh, /*beta=*/1.0, /*alpha=*/2.0 / nk);
  } else {
    for (int64_t i = 0; i < k; ++i) {
      if ((n_ + i) % stride_ != 0) continue;
      sample_.push_back(rows[i].clone());
      if (static_cast<int64_t>(sample_.size()) == 2 * kSampleRows) {  // keep every other: stride doubles
        std::vector<torch::Tensor> half;
        for (size_t j = 0; j < sample_.size(); j += 2) half.push_back(sample_[j]);
        sample_ = std::move(half);
        stride_ *= 2;
      }
    }
    if (static_cast<int64_t>(sample_.size()) > kSampleRows) {  // trim to the cap, keeping the stride's rows
      std::vector<torch::Tensor> half;
      for (size_t j = 0; j < sample_.size(); j += 2) half.push_back(sample_[j]);
      sample_ = std::move(half);
      stride_ *= 2;
    }
  }
  n_ += k;
}

void LayerStats::require_rows(const char* fn) const {
  RESSA_CHECK_ARG(n_ > 0, "[LayerStats::", fn, "] no calibration rows were added (nsamples = 0)");
}

torch::Tensor LayerStats::col_norm_sq() const {
  require_rows("col_norm_sq");
  return sum_sq_;
}

torch::Tensor LayerStats::col_mean() const {
  require_rows("col_mean");
  return mean_;
}

torch::Tensor LayerStats::col_var() const {
  require_rows("col_var");
  return m2_ / static_cast<double>(n_);
}

torch::Tensor LayerStats::hessian() const {
  RESSA_CHECK_ARG(need_hessian_, "[LayerStats::hessian] this LayerStats was built with need_hessian = false");
  RESSA_CHECK_ARG(n_ == 0 || H_.defined(), "[LayerStats::hessian] the Hessian was already freed");
  require_rows("hessian");
  return H_;
}

void LayerStats::free_hessian() { H_ = torch::Tensor(); }

torch::Tensor LayerStats::sample() const {
  require_rows("sample");
  if (need_hessian_) return {};
  return torch::stack(sample_);
}

double LayerStats::layer_error(const torch::Tensor& w, const torch::Tensor& w_pruned) const {
  if (need_hessian_) return recon_error_gram(w, w_pruned, hessian());
  return recon_error(w, w_pruned, sample());
}

namespace {
double ratio_or_inf(double num, double den) {
  if (den > 0) return num / den;
  return num == 0 ? 0.0 : std::numeric_limits<double>::infinity();
}

void check_pair(const torch::Tensor& w, const torch::Tensor& wp, int64_t d_in, const char* fn) {
  RESSA_CHECK_ARG(w.defined() && wp.defined() && w.dim() == 2 && w.sizes() == wp.sizes() && w.size(1) == d_in,
                  "[", fn, "] expected w and w_pruned [d_out, ", d_in, "], got ",
                  w.defined() ? w.sizes() : c10::IntArrayRef{}, " and ", wp.defined() ? wp.sizes() : c10::IntArrayRef{});
}
}  // namespace

double recon_error(const torch::Tensor& w, const torch::Tensor& w_pruned, const torch::Tensor& x) {
  RESSA_CHECK_ARG(x.defined() && x.dim() >= 1, "[recon_error] x must be [..., d_in]");
  check_pair(w, w_pruned, x.size(-1), "recon_error");
  auto xd = x.reshape({-1, x.size(-1)}).to(torch::kDouble);
  auto wd = w.to(xd.device(), torch::kDouble);
  auto y = torch::matmul(xd, wd.t());                                                   // [n, d_out]
  auto dy = torch::matmul(xd, (wd - w_pruned.to(xd.device(), torch::kDouble)).t());  // [n, d_out]
  return ratio_or_inf(dy.square().sum().item<double>(), y.square().sum().item<double>());
}

double recon_error_gram(const torch::Tensor& w, const torch::Tensor& w_pruned, const torch::Tensor& gram) {
  RESSA_CHECK_ARG(gram.defined() && gram.dim() == 2 && gram.size(0) == gram.size(1),
                  "[recon_error_gram] gram must be square [d_in, d_in], got ",
                  gram.defined() ? gram.sizes() : c10::IntArrayRef{});
  check_pair(w, w_pruned, gram.size(0), "recon_error_gram");
  const auto dt = gram.scalar_type() == torch::kFloat ? torch::kFloat : torch::kDouble;
  auto g = gram.to(dt);
  auto wd = w.to(g.device(), dt);
  auto dd = wd - w_pruned.to(g.device(), dt);
  // tr(A G Aᵀ) = Σ (A G) ⊙ A
  double num = (torch::matmul(dd, g) * dd).sum(torch::kDouble).item<double>();
  double den = (torch::matmul(wd, g) * wd).sum(torch::kDouble).item<double>();
  return ratio_or_inf(num, den);
}

}  // namespace ressa::prune
