// Linear layer with pruning mask, adapters (SparseLoRA / LoRA / masked finetuning) and teacher mode.
#include "ressa/model/linear.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>

#include "ressa/core/error.h"
#include "ressa/model/intraop.h"
#include "ressa/sparse/half_gemv.h"
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

// A decode-sized product (at most kHalfGemvMaxBatch rows of x) of an fp32 input with a 16-bit
// weight, widened in registers (sparse/half_gemv.h); undefined where it does not apply.
torch::Tensor half_inference_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  const auto wt = w.scalar_type();
  if (at::GradMode::is_enabled() || (wt != torch::kHalf && wt != torch::kBFloat16) || !x.device().is_cpu() ||
      !w.device().is_cpu() || x.scalar_type() != torch::kFloat32 || w.dim() != 2 || !w.is_contiguous() ||
      x.dim() < 1 || x.size(-1) != w.size(1) || x.numel() / std::max<int64_t>(1, w.size(1)) > sparse::kHalfGemvMaxBatch ||
      x.numel() == 0 || (bias.defined() && (bias.scalar_type() != torch::kFloat32 || !bias.device().is_cpu())))
    return {};
  const int64_t rows = w.size(0), cols = w.size(1);
  auto x2 = x.reshape({-1, cols}).contiguous();
  const int64_t batch = x2.size(0);
  auto y = torch::empty({batch, rows}, x2.options());
  const auto t = wt == torch::kHalf ? sparse::ValueType::f16 : sparse::ValueType::bf16;
  const auto* wp = static_cast<const uint16_t*>(w.data_ptr());
  const float* xp = x2.data_ptr<float>();
  float* yp = y.data_ptr<float>();
  const sparse::Isa isa = sparse::active_isa();
  const int64_t grain = std::max<int64_t>(1, kMinParallelMacs / std::max<int64_t>(1, cols * batch));
  intraop_for(0, rows, grain, [&](int64_t r0, int64_t r1) {
    sparse::half_gemv_rows(isa, t, wp, rows, cols, r0, r1, xp, batch, yp);
  });
  if (bias.defined()) y.add_(bias);
  auto out_shape = x.sizes().vec();
  out_shape.back() = rows;
  return y.view(out_shape);
}

// torch's linear, or the inference paths above where they apply. A weight held in another dtype
// than the input (an fp16 / bf16 checkpoint's weights kept as stored, LoadOptions::map_weights)
// is read in place at decode sizes, else widened for this product only: the layer computes in
// the input's dtype.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias) {
  if (w.scalar_type() != x.scalar_type()) {
    if (auto y = half_inference_linear(x, w, bias); y.defined()) return y;
    return linear(x, w.to(x.scalar_type()), bias);
  }
  if (auto y = dense_inference_linear(x, w, bias); y.defined()) return y;
  return torch::nn::functional::linear(x, w, bias);
}

}  // namespace

// ---- WeightMask ----

void WeightMask::set(const torch::Tensor& mask, const torch::Tensor& weight) {
  RESSA_CHECK_ARG(mask.sizes() == weight.sizes(), "[Linear] mask ", mask.sizes(), " does not match weight ",
                  weight.sizes());
  mask_ = mask.detach().to(weight.device(), torch::kBool);
  checked_weight_ = WeakImpl(c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>());
}

bool WeightMask::holds_zeros(const torch::Tensor& weight) const {
  if (checked_weight_._unsafe_get_target() != weight.unsafeGetTensorImpl() || checked_version_ != weight._version()) {
    zeros_ = !weight.masked_select(mask_.logical_not()).any().item<bool>();
    checked_weight_ = WeakImpl(weight.getIntrusivePtr());
    checked_version_ = weight._version();
  }
  return zeros_;
}

torch::Tensor WeightMask::apply(const torch::Tensor& weight) const {
  if (!defined() || (!at::GradMode::is_enabled() && holds_zeros(weight))) return weight;
  return weight * mask_;
}

// ---- adapters ----

const torch::Tensor& Adapter::lora_A() const {
  static const torch::Tensor none;
  return none;
}
const torch::Tensor& Adapter::lora_B() const { return lora_A(); }

namespace {

// Masked finetuning: the weight itself trains; the mask keeps its gradient to the kept positions.
class MaskedFtAdapter final : public Adapter {
 public:
  AdapterKind kind() const override { return AdapterKind::MaskedFt; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& w, const WeightMask& m,
                        const torch::Tensor& b) const override {
    return linear(x, m.apply(w), b);
  }
  torch::Tensor merged(const torch::Tensor& w, const WeightMask& m) const override {
    auto out = w.detach().clone();
    if (m.defined()) out *= m.tensor();
    return out;
  }
  std::vector<torch::Tensor> trainable(const torch::Tensor& w) const override { return {w}; }
};

// The low-rank factors both LoRA kinds train: B·A scaled by s, B zero at the start.
class LowRankAdapter : public Adapter {
 public:
  LowRankAdapter(torch::Tensor a, torch::Tensor b, double scale) : a_(std::move(a)), b_(std::move(b)), scale_(scale) {}
  const torch::Tensor& lora_A() const override { return a_; }
  const torch::Tensor& lora_B() const override { return b_; }
  double lora_scale() const override { return scale_; }
  std::vector<torch::Tensor> trainable(const torch::Tensor&) const override { return {a_, b_}; }

 protected:
  torch::Tensor delta() const { return scale_ * torch::matmul(b_, a_); }
  torch::Tensor a_, b_;
  double scale_;
};

// y = x ((W + s·B·A) ⊙ M)ᵀ with W and M frozen, as one autograd node that keeps x, A and B for
// the backward pass and forms the [d_out, d_in] merged weight again there: autograd's own graph
// kept that matrix (fp32) of every adapted layer until the backward pass, the whole model's
// weights again in fp32 (docs/architecture.md "Memory when repairing").
struct SparseLoraLinear : torch::autograd::Function<SparseLoraLinear> {
  // The frozen operands, passed as one non-tensor argument: autograd records every tensor
  // argument, and the mask may be undefined.
  struct Frozen {
    torch::Tensor w, mask;
    double scale;
  };
  static torch::Tensor merged(const Frozen& f, const torch::Tensor& a, const torch::Tensor& b) {
    auto m = f.w.to(a.scalar_type()) + f.scale * torch::matmul(b, a);
    if (f.mask.defined()) m.mul_(f.mask);
    return m;
  }
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x, const torch::Tensor& a,
                               const torch::Tensor& b, const Frozen& f) {
    ctx->save_for_backward({x, a, b});
    ctx->saved_data["w"] = f.w;
    ctx->saved_data["mask"] = f.mask;
    ctx->saved_data["scale"] = f.scale;
    return torch::matmul(x, merged(f, a, b).t());
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto saved = ctx->get_saved_variables();
    const auto &x = saved[0], &a = saved[1], &b = saved[2];
    const Frozen f{ctx->saved_data["w"].toTensor(), ctx->saved_data["mask"].toTensor(),
                   ctx->saved_data["scale"].toDouble()};
    const auto& g = grad[0];
    auto gx = torch::matmul(g, merged(f, a, b));
    auto gw = torch::matmul(g.reshape({-1, g.size(-1)}).t(), x.reshape({-1, x.size(-1)}));  // [d_out, d_in]
    if (f.mask.defined()) gw.mul_(f.mask);
    auto ga = f.scale * torch::matmul(b.t(), gw), gb = f.scale * torch::matmul(gw, a.t());
    return {gx, ga, gb, torch::Tensor()};
  }
};

// SparseLoRA: the mask applies to the product B·A (method.md §2), so the merged weight keeps the pattern.
class SparseLoraAdapter final : public LowRankAdapter {
 public:
  using LowRankAdapter::LowRankAdapter;
  AdapterKind kind() const override { return AdapterKind::SparseLora; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& w, const WeightMask& m,
                        const torch::Tensor& b) const override {
    if (!at::GradMode::is_enabled()) return linear(x, merged(w, m), b);
    auto y = SparseLoraLinear::apply(x, a_, b_, SparseLoraLinear::Frozen{w.detach(), m.tensor(), scale_});
    return b.defined() ? y + b : y;
  }
  torch::Tensor merged(const torch::Tensor& w, const WeightMask& m) const override {
    torch::NoGradGuard ng;
    return SparseLoraLinear::merged({w.detach(), m.tensor(), scale_}, a_, b_);
  }
};

// Plain LoRA (baseline): a dense update beside the base weight; merging fills pruned positions.
class LoraAdapter final : public LowRankAdapter {
 public:
  using LowRankAdapter::LowRankAdapter;
  AdapterKind kind() const override { return AdapterKind::Lora; }
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& w, const WeightMask&,
                        const torch::Tensor& b) const override {
    namespace F = torch::nn::functional;
    return linear(x, w, b) + scale_ * F::linear(F::linear(x, a_), b_);
  }
  torch::Tensor merged(const torch::Tensor& w, const WeightMask&) const override {
    return w.detach() + delta().detach();
  }
};

}  // namespace

// ---- LinearImpl ----

namespace {
thread_local bool skip_weight_init = false;
}  // namespace

SkipWeightInit::SkipWeightInit() : previous_(skip_weight_init) { skip_weight_init = true; }
SkipWeightInit::~SkipWeightInit() { skip_weight_init = previous_; }
bool SkipWeightInit::active() { return skip_weight_init; }

LinearImpl::LinearImpl(int64_t in, int64_t out, bool with_bias) {
  weight = register_parameter("weight", torch::empty({out, in}));
  if (!SkipWeightInit::active()) torch::nn::init::kaiming_uniform_(weight, std::sqrt(5.0));
  if (with_bias) {
    const double bound = 1.0 / std::sqrt(static_cast<double>(in));
    bias = register_parameter("bias", torch::empty({out}).uniform_(-bound, bound));
  }
}

namespace {
// Rows of x from which a prefill-sized product of a bitmask weight that keeps more than
// kDenseDensity of its values runs faster through BLAS: decoding TinyLlama-1.1B shapes at 50%,
// a 128-token prefill took 0.84x the dense time through the kernels (docs/benchmarks.md
// "Decoding"); from 70% on, and for N:M, the kernels are faster there too.
constexpr int64_t kPrefillRows = 64;
constexpr double kDenseDensity = 0.4;

bool prefers_dense(const SparseWeight& w, const torch::Tensor& x) {
  const auto* b = std::get_if<sparse::BitmaskMatrix>(&w.matrix);
  return b && b->density() > kDenseDensity && x.numel() / std::max<int64_t>(1, x.size(-1)) >= kPrefillRows;
}
}  // namespace

bool LinearImpl::uses_sparse_path(const torch::Tensor& x) const {
  return compressed_ && !teacher_mode_ && !adapter_ && !input_hook_ && !at::GradMode::is_enabled() &&
         x.device().is_cpu() && x.scalar_type() == torch::kFloat32 && weight._version() == compressed_->version &&
         (dense_released_ || !prefers_dense(*compressed_, x));
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (input_hook_) input_hook_(x);
  if (uses_sparse_path(x)) return sparse_linear(*compressed_, x, bias);
  RESSA_CHECK(!dense_released_, "[Linear] this layer was loaded for inference only (its dense weight was released): "
              "it runs only through the sparse kernels (float CPU input, no gradients, no adapter, no teacher mode); "
              "load the model without release_dense for anything else");
  // Teacher mode is the dense model: W0 where pruning changed the weight, else the weight as
  // loaded, never the mask or an adapter (method.md §5 defect 5: the reference's teacher kept the
  // connector's LoRA). A layer whose weight trains (masked-ft) must have W0 set.
  if (teacher_mode_) return linear(x, teacher_weight_.defined() ? teacher_weight_ : weight, bias);
  if (adapter_) return adapter_->forward(x, weight, mask_, bias);
  return linear(x, mask_.apply(weight), bias);
}

void LinearImpl::attach_adapter(AdapterKind kind, int64_t rank, double alpha) {
  RESSA_CHECK_ARG(!adapter_, "[Linear::attach_adapter] adapter already attached");
  if (kind == AdapterKind::None) return;
  if (kind == AdapterKind::MaskedFt) {
    weight.set_requires_grad(true);
    adapter_ = std::make_unique<MaskedFtAdapter>();
    return;
  }
  RESSA_CHECK_ARG(rank > 0, "[Linear::attach_adapter] rank must be > 0, got ", rank);
  weight.set_requires_grad(false);
  // fp32 factors whatever the frozen weight's dtype (a 16-bit weight read in place).
  auto opts = weight.options().dtype(torch::kFloat).requires_grad(false);
  auto a = torch::empty({rank, in_features()}, opts);
  torch::nn::init::kaiming_uniform_(a, std::sqrt(5.0));
  a = register_parameter("lora_A", a);
  auto b = register_parameter("lora_B", torch::zeros({out_features(), rank}, opts));
  const double scale = alpha / static_cast<double>(rank);
  if (kind == AdapterKind::SparseLora) adapter_ = std::make_unique<SparseLoraAdapter>(a, b, scale);
  else adapter_ = std::make_unique<LoraAdapter>(a, b, scale);
}

std::vector<torch::Tensor> LinearImpl::trainable_parameters() const {
  return adapter_ ? adapter_->trainable(weight) : std::vector<torch::Tensor>{};
}

const torch::Tensor& LinearImpl::lora_A() const {
  static const torch::Tensor none;
  return adapter_ ? adapter_->lora_A() : none;
}

const torch::Tensor& LinearImpl::lora_B() const {
  static const torch::Tensor none;
  return adapter_ ? adapter_->lora_B() : none;
}

torch::Tensor LinearImpl::merged_weight() const {
  torch::NoGradGuard ng;
  if (adapter_) return adapter_->merged(weight, mask_);
  auto w = weight.detach().clone();
  if (mask_.defined()) w *= mask_.tensor();
  return w;
}

void LinearImpl::merge_adapter() {
  torch::NoGradGuard ng;
  // A new tensor in the weight's dtype (rounded as copy_ would), not a write into it: the frozen
  // weight may be a read-only view of the mapped checkpoint (LoadOptions::map_weights).
  weight.set_data(merged_weight().to(weight.scalar_type()));
  adapter_.reset();
}

void LinearImpl::set_compressed(std::shared_ptr<SparseWeight> w) {
  RESSA_CHECK_ARG(w && w->rows() == out_features() && w->cols() == in_features(), "[Linear::set_compressed] shape [",
                  w ? w->rows() : 0, ", ", w ? w->cols() : 0, "] does not match weight ", weight.sizes());
  w->version = weight._version();
  compressed_ = std::move(w);
}

void LinearImpl::drop_compressed() {
  RESSA_CHECK(!dense_released_, "[Linear] the dense weight was released; the compressed copy is the only one");
  compressed_.reset();
}

void LinearImpl::release_dense() {
  torch::NoGradGuard ng;
  const auto sizes = weight.sizes().vec();
  weight.set_(torch::zeros({1}).storage(), 0, sizes, std::vector<int64_t>(sizes.size(), 0));
  dense_released_ = true;
}

torch::Tensor LinearImpl::dense_weight_copy() const {
  return dense_released_ ? compressed_->to_dense() : weight;
}

}  // namespace ressa::model
