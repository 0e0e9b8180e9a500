// Linear layer with pruning mask, adapters (SparseLoRA / LoRA / masked finetuning) and teacher mode.
#include "ressa/model/linear.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>

#include "ressa/core/error.h"
#include "ressa/model/intraop.h"
#include "ressa/sparse/kernels.h"

namespace ressa::model {

AdapterKind parse_adapter_kind(const std::string& s) {
  if (s == "none") return AdapterKind::None;
  if (s == "sparse-lora") return AdapterKind::SparseLora;
  if (s == "lora") return AdapterKind::Lora;
  if (s == "masked-ft") return AdapterKind::MaskedFt;
  fail_arg("[parse_adapter_kind] unknown adapter '", s, "' (expected sparse-lora, lora or masked-ft)");
}

std::string to_string(AdapterKind k) {
  switch (k) {
    case AdapterKind::None: return "none";
    case AdapterKind::SparseLora: return "sparse-lora";
    case AdapterKind::Lora: return "lora";
    case AdapterKind::MaskedFt: return "masked-ft";
  }
  return "?";
}

int64_t SparseWeight::rows() const {
  return std::visit([](const auto& m) { return m.rows(); }, matrix);
}

int64_t SparseWeight::cols() const {
  return std::visit([](const auto& m) { return m.cols(); }, matrix);
}

sparse::ValueType SparseWeight::value_type() const {
  return std::visit([](const auto& m) { return m.value_type(); }, matrix);
}

torch::Tensor SparseWeight::to_dense() const {
  auto dense = torch::empty({rows(), cols()}, torch::kFloat32);
  std::visit([&](const auto& m) { m.to_dense(dense.data_ptr<float>()); }, matrix);
  return dense;
}

torch::Tensor sparse_linear(const SparseWeight& w, const torch::Tensor& x, const torch::Tensor& bias) {
  RESSA_CHECK_ARG(x.dim() >= 1 && x.size(-1) == w.cols(), "[sparse_linear] x ", x.sizes(), " needs last dim ",
                  w.cols());
  RESSA_CHECK_ARG(x.device().is_cpu() && x.scalar_type() == torch::kFloat32,
                  "[sparse_linear] x must be a float32 CPU tensor, got ", x.scalar_type(), " on ", x.device());
  auto x2 = x.reshape({-1, w.cols()}).contiguous();  // [batch, cols]
  const int64_t batch = x2.size(0);
  auto y = torch::empty({batch, w.rows()}, x2.options());  // [batch, rows]
  const int threads = std::max(1, static_cast<int>(torch::get_num_threads()));
  if (batch > 0) {
    if (const auto* b = std::get_if<sparse::BitmaskMatrix>(&w.matrix))
      sparse::bitmask_matmul(*b, x2.data_ptr<float>(), batch, y.data_ptr<float>(), threads);
    else
      sparse::nm_matmul(std::get<sparse::NMMatrix>(w.matrix), x2.data_ptr<float>(), batch, y.data_ptr<float>(),
                        threads);
  }
  if (bias.defined()) y.add_(bias);
  auto out_shape = x.sizes().vec();
  out_shape.back() = w.rows();
  return y.view(out_shape);
}

namespace {

// CBLAS of the library serving torch's BLAS (looked up at run time: ressa links no BLAS itself;
// null when that library has no CBLAS, e.g. the reference libblas3).
enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };
using CblasSgemv = void (*)(int, int, int, int, float, const float*, int, const float*, int, float, float*, int);
using CblasSgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                            int);
CblasSgemv cblas_sgemv_fn() {
  static const auto f = reinterpret_cast<CblasSgemv>(dlsym(RTLD_DEFAULT, "cblas_sgemv"));
  return f;
}
CblasSgemm cblas_sgemm_fn() {
  static const auto f = reinterpret_cast<CblasSgemm>(dlsym(RTLD_DEFAULT, "cblas_sgemm"));
  return f;
}

// OpenBLAS's own thread count (1 when the BLAS is not OpenBLAS): above 1 (RESSA_BLAS_THREADS), the
// product is one call that OpenBLAS threads itself, not ranges on torch's threads calling into its
// pool at the same time.
int blas_threads() {
  static const auto f = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  return f ? f() : 1;
}

// Multiply-adds per thread below which a dense inference product is not split further (the
// pool's hand-off would cost more than it saves on a small weight).
constexpr int64_t kMinParallelMacs = 1 << 16;

}  // namespace

torch::Tensor dense_inference_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  if (at::GradMode::is_enabled() || !x.device().is_cpu() || x.scalar_type() != torch::kFloat32 || w.dim() != 2 ||
      !w.device().is_cpu() || w.scalar_type() != torch::kFloat32 || !w.is_contiguous() || x.dim() < 1 ||
      x.size(-1) != w.size(1) || !cblas_sgemv_fn() || !cblas_sgemm_fn() ||
      (bias.defined() && (bias.scalar_type() != torch::kFloat32 || !bias.device().is_cpu() || bias.dim() != 1 ||
                          bias.size(0) != w.size(0))))
    return {};
  const int64_t rows = w.size(0), cols = w.size(1);
  auto x2 = x.reshape({-1, cols}).contiguous();
  const int64_t batch = x2.size(0);
  if (batch == 0 || rows == 0 || cols == 0 || rows > INT32_MAX || cols > INT32_MAX || batch > INT32_MAX) return {};
  auto y = torch::empty({batch, rows}, x2.options());
  const float* xp = x2.data_ptr<float>();
  const float* wp = w.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const auto product = [&](int64_t r0, int64_t r1) {
    const int n = int(r1 - r0);
    if (batch == 1)
      cblas_sgemv_fn()(kRowMajor, kNoTrans, n, int(cols), 1.0f, wp + r0 * cols, int(cols), xp, 1, 0.0f, yp + r0, 1);
    else
      cblas_sgemm_fn()(kRowMajor, kNoTrans, kTrans, int(batch), n, int(cols), 1.0f, xp, int(cols), wp + r0 * cols,
                       int(cols), 0.0f, yp + r0, int(rows));
  };
  const int64_t grain = std::max<int64_t>(1, kMinParallelMacs / std::max<int64_t>(1, cols * batch));
  if (blas_threads() > 1) product(0, rows);
  else intraop_for(0, rows, grain, product);
  if (bias.defined()) y.add_(bias);
  auto out_shape = x.sizes().vec();
  out_shape.back() = rows;
  return y.view(out_shape);
}

namespace {

// torch's linear, or the inference path above where it applies.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  if (auto y = dense_inference_linear(x, w, bias); y.defined()) return y;
  return torch::nn::functional::linear(x, w, bias);
}

}  // namespace

bool LinearImpl::uses_sparse_path(const torch::Tensor& x) const {
  return sparse && !teacher_mode && adapter == AdapterKind::None && !input_hook && !at::GradMode::is_enabled() &&
         x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && weight._version() == sparse->version;
}

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out, in}));
  torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    bias = register_parameter("bias", torch::empty({out}).uniform_(-bound, bound));
  }
}

bool LinearImpl::weight_is_masked() const {
  const int64_t wv = weight._version(), mv = mask._version();
  if (checked_weight_._unsafe_get_target() != weight.unsafeGetTensorImpl() ||
      checked_mask_._unsafe_get_target() != mask.unsafeGetTensorImpl() || checked_versions_[0] != wv ||
      checked_versions_[1] != mv) {
    masked_ = torch::equal(weight * mask, weight);
    checked_weight_ = WeakImpl(weight.getIntrusivePtr());
    checked_mask_ = WeakImpl(mask.getIntrusivePtr());
    checked_versions_[0] = wv, checked_versions_[1] = mv;
  }
  return masked_;
}

torch::Tensor LinearImpl::dense_weight_copy() const { return dense_released ? sparse->to_dense() : weight; }

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (input_hook) input_hook(x);
  if (uses_sparse_path(x)) return sparse_linear(*sparse, x, bias);
  RESSA_CHECK(!dense_released, "[Linear] this layer was loaded for inference only (its dense weight was released): it "
              "runs only through the sparse kernels (float CPU input, no gradients, no adapter, no teacher mode); "
              "load the model without release_dense for anything else");
  // Teacher mode is the dense model: W0 where pruning changed the weight, else the weight as
  // loaded, never the mask or an adapter (method.md §5 defect 5: the reference's teacher kept the
  // connector's LoRA). A layer whose weight trains (masked-ft) must have dense_weight set.
  if (teacher_mode) return linear(x, dense_weight.defined() ? dense_weight : weight, bias);
  switch (adapter) {
    case AdapterKind::None:
    case AdapterKind::MaskedFt:
      if (mask.defined() && !at::GradMode::is_enabled() && weight_is_masked()) return linear(x, weight, bias);
      return linear(x, mask.defined() ? weight * mask : weight, bias);
    case AdapterKind::SparseLora: {
      // The mask applies to the product B·A (method.md §2), so the merged weight keeps the pattern.
      auto w = weight + lora_scale * torch::matmul(lora_B, lora_A);
      if (mask.defined()) w = w * mask;
      return torch::nn::functional::linear(x, w, bias);
    }
    case AdapterKind::Lora: {
      auto base = torch::nn::functional::linear(x, weight, bias);
      return base + lora_scale * torch::nn::functional::linear(torch::nn::functional::linear(x, lora_A), lora_B);
    }
  }
  return {};
}

void LinearImpl::attach_adapter(AdapterKind kind, int64_t rank, double alpha) {
  RESSA_CHECK_ARG(adapter == AdapterKind::None, "[Linear::attach_adapter] adapter already attached");
  adapter = kind;
  if (kind == AdapterKind::None) return;
  if (kind == AdapterKind::MaskedFt) {
    weight.set_requires_grad(true);
    return;
  }
  RESSA_CHECK_ARG(rank > 0, "[Linear::attach_adapter] rank must be > 0, got ", rank);
  weight.set_requires_grad(false);
  auto opts = weight.options().requires_grad(false);
  lora_A = torch::empty({rank, in_features()}, opts);
  torch::nn::init::kaiming_uniform_(lora_A, std::sqrt(5.0));
  lora_B = torch::zeros({out_features(), rank}, opts);
  lora_A = register_parameter("lora_A", lora_A);
  lora_B = register_parameter("lora_B", lora_B);
  lora_scale = alpha / static_cast<double>(rank);
}

torch::Tensor LinearImpl::merged_weight() const {
  torch::NoGradGuard ng;
  torch::Tensor w = weight.detach().clone();
  if (adapter == AdapterKind::SparseLora || adapter == AdapterKind::Lora)
    w += lora_scale * torch::matmul(lora_B.detach(), lora_A.detach());
  if (mask.defined() && adapter != AdapterKind::Lora) w *= mask;
  return w;
}

void LinearImpl::merge_adapter() {
  torch::NoGradGuard ng;
  weight.copy_(merged_weight());
  adapter = AdapterKind::None;
  lora_A = torch::Tensor();
  lora_B = torch::Tensor();
  lora_scale = 0.0;
}

}  // namespace ressa::model
