// Linear layer with the optional pruning/repair state ressa needs, in one place:
//   plain:        y = x W^T + b     (without gradients: dense_inference_linear)
//   masked-ft:    y = x (W ⊙ M)^T + b                       (W trains, gradient only at kept positions)
//   sparse-lora:  y = x ((W + s·B·A) ⊙ M)^T + b             (A, B train; M absent = dense LoRA-merge)
//   lora:         y = x W^T + b + s·(x A^T) B^T             (plain LoRA baseline; merge fills zeros)
//   teacher mode: y = x W0^T + b  with W0 = dense_weight (the weight before pruning) when set, else
//                 the frozen weight; masks and adapters are bypassed (distillation teacher)
//   sparse:       y = x W^T + b through ressa::sparse's kernels when the layer was loaded from a
//                 compressed checkpoint (`sparse` set), gradients are off, x is a float CPU
//                 tensor and the weight has not been modified since (checked by its version
//                 counter); otherwise the dense path above. Same answers either way.
// The registered parameter names ("weight", "bias") are the checkpoint keys.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <variant>

#include "ressa/sparse/formats.h"

namespace ressa::model {

enum class AdapterKind { None, SparseLora, Lora, MaskedFt };
AdapterKind parse_adapter_kind(const std::string& s);  // "none","sparse-lora","lora","masked-ft"
std::string to_string(AdapterKind k);

// A Linear weight in a compressed format, for inference through the sparse kernels. `version`
// is weight._version() when it was built: any in-place change of the weight (training, pruning)
// bumps the counter and the layer falls back to the dense path.
struct SparseWeight {
  std::variant<sparse::BitmaskMatrix, sparse::NMMatrix> matrix;
  int64_t version = -1;
  int64_t rows() const;
  int64_t cols() const;
  sparse::ValueType value_type() const;  // how the kept values are stored
  // The dense float [rows, cols] weight (zeros where pruned; 16-bit values widened).
  torch::Tensor to_dense() const;
};

// y = x W^T (+ bias) through the sparse kernels: x [..., cols] float CPU, y [..., rows]; threads
// = torch's intra-op thread count. The one place that joins torch tensors and the torch-free
// kernels.
torch::Tensor sparse_linear(const SparseWeight& w, const torch::Tensor& x, const torch::Tensor& bias);

// y = x W^T (+ bias) for inference, what a dense Linear runs when gradients are off: x [..., cols]
// and W [rows, cols] float CPU (W contiguous). The weight's rows are split over torch's intra-op
// threads and each range is one single-threaded BLAS call: sgemv at batch 1 (torch's addmm calls
// sgemm there, 2.5-3x slower on a [1, cols] input) and sgemm otherwise. Under torch, OpenBLAS runs
// one thread (model/device.h), so torch's own path left the other cores idle in every dense
// product: `ressa eval --batch 1 --threads 2 --limit 400` of a dense `base` model took 25.7 s
// instead of 45.8 s (docs/benchmarks.md "End to end"). Undefined when not applicable (gradients
// on, other dtypes or devices, or a BLAS without CBLAS): the caller then uses torch's linear.
torch::Tensor dense_inference_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias);

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias);
  // x [..., in] -> [..., out]
  torch::Tensor forward(const torch::Tensor& x);

  // Attaches an adapter. For SparseLora/Lora: rank r, alpha; A [r, in] Kaiming-uniform, B [out, r]
  // zeros, s = alpha / r. The base weight is frozen. For MaskedFt the weight trains.
  void attach_adapter(AdapterKind kind, int64_t rank, double alpha);
  // Weight the layer would have after merging its adapter ((W + sBA) ⊙ M for sparse-lora,
  // W + sBA for lora, W ⊙ M for masked-ft). No-grad.
  torch::Tensor merged_weight() const;
  // Replaces weight by merged_weight() and drops the adapter.
  void merge_adapter();

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }

  torch::Tensor weight;  // [out, in]
  torch::Tensor bias;    // [out] or undefined
  torch::Tensor mask;    // [out, in] float 0/1 (1 = kept) or undefined (dense)
  torch::Tensor dense_weight;  // W0 for teacher mode, or undefined
  torch::Tensor lora_A, lora_B;
  AdapterKind adapter = AdapterKind::None;
  double lora_scale = 0.0;
  bool teacher_mode = false;
  // Compressed copy of `weight` for inference (set by model::load_model on compressed
  // checkpoints); null = dense only.
  std::shared_ptr<const SparseWeight> sparse;
  // True when load_model released the dense copy (LoadOptions::release_dense): `weight` is then a
  // shape-only placeholder (one float of storage, zero strides), forward() runs only through the
  // sparse kernels and throws where it would need the dense weight.
  bool dense_released = false;
  // The weight as a dense tensor: `weight`, or, when the dense copy was released, a fresh copy
  // decompressed from `sparse` (for reports; not a parameter).
  torch::Tensor dense_weight_copy() const;
  // Whether forward(x) would take the sparse path now (see the header comment).
  bool uses_sparse_path(const torch::Tensor& x) const;
  // Called with forward()'s input x [..., in] before anything else (pruning calibration
  // captures each layer's inputs this way); empty = no hook.
  std::function<void(const torch::Tensor&)> input_hook;

 private:
  // Without gradients, whether weight already holds zeros wherever mask is 0 (pruning and merging
  // write them), so that forward() can skip weight * mask, a full-size product per call. Checked
  // again whenever either tensor is replaced or changed in place: the weak references pin the
  // checked TensorImpls' addresses (not their data), the versions count in-place changes.
  bool weight_is_masked() const;
  using WeakImpl = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>;
  mutable WeakImpl checked_weight_{c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
  mutable WeakImpl checked_mask_{c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
  mutable int64_t checked_versions_[2] = {-1, -1};
  mutable bool masked_ = false;
};
TORCH_MODULE(Linear);

}  // namespace ressa::model
