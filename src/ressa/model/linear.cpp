// Linear layer with pruning mask, adapters (SparseLoRA / LoRA / masked finetuning) and teacher mode.
#include "ressa/model/linear.h"

#include <algorithm>
#include <cmath>

#include "ressa/core/error.h"
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
  if (teacher_mode) return torch::nn::functional::linear(x, dense_weight.defined() ? dense_weight : weight, bias);
  switch (adapter) {
    case AdapterKind::None:
      return torch::nn::functional::linear(x, mask.defined() ? weight * mask : weight, bias);
    case AdapterKind::MaskedFt:
      return torch::nn::functional::linear(x, mask.defined() ? weight * mask : weight, bias);
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
