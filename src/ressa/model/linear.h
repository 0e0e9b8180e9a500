// Linear layer with the optional pruning/repair state ressa needs. The state is private; each
// concern is one small piece (docs/architecture.md "Linear layers"):
//   weight source: the dense weight W (+ bias b), masked by the pruning mask M when one is set
//                  (WeightMask; bool, true = kept), or served through the sparse kernels from a
//                  compressed copy (set_compressed) when gradients are off, the input is a float
//                  CPU tensor and W has not changed since (its version counter); same answers.
//   adapter:       none, or one Adapter strategy (repair, docs/method.md §2):
//                    masked-ft    y = x (W ⊙ M)^T + b              (W trains, gradient only where kept)
//                    sparse-lora  y = x ((W + s·B·A) ⊙ M)^T + b    (A, B train; no M = dense LoRA merge)
//                    lora         y = x W^T + b + s·(x A^T) B^T    (plain LoRA baseline; merge fills zeros)
//   teacher:       W0, the weight before pruning; in teacher mode y = x W0^T + b (W when no W0 is
//                  set) and masks and adapters are bypassed: the distillation teacher is the dense model.
// The registered parameter names ("weight", "bias", "lora_A", "lora_B") are the checkpoint keys.
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
// is weight._version() when it was attached (LinearImpl::set_compressed): any in-place change of
// the weight (training, pruning) bumps the counter and the layer falls back to the dense path.
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
// product (docs/benchmarks.md "End to end"). Undefined when not applicable (gradients on, other
// dtypes or devices, or a BLAS without CBLAS): the caller then uses torch's linear.
torch::Tensor dense_inference_linear(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& bias);

// The pruning mask of one weight: bool [out, in], true = kept, or undefined (dense).
class WeightMask {
 public:
  bool defined() const { return mask_.defined(); }
  const torch::Tensor& tensor() const { return mask_; }
  // Any 0/1 tensor of the weight's shape (float, uint8 or bool), stored as bool on the weight's device.
  void set(const torch::Tensor& mask, const torch::Tensor& weight);
  void reset() { mask_ = torch::Tensor(); }
  // W ⊙ M, or W itself when there is no mask, or when gradients are off and W already holds zeros
  // wherever M is false (pruning and merging write them): saves a full-size product per call.
  torch::Tensor apply(const torch::Tensor& weight) const;

 private:
  // Whether `weight` is zero wherever the mask is false, re-checked only when the weight tensor is
  // replaced or changed in place, or the mask replaced (set() forgets the answer): the weak
  // reference pins the checked TensorImpl's address (not its data), the version counts in-place
  // changes. The mask is private and never changed in place.
  bool holds_zeros(const torch::Tensor& weight) const;
  torch::Tensor mask_;
  using WeakImpl = c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>;
  mutable WeakImpl checked_weight_{c10::intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>()};
  mutable int64_t checked_version_ = -1;
  mutable bool zeros_ = false;
};

// A repair adapter on one Linear (the three kinds are in linear.cpp).
class Adapter {
 public:
  virtual ~Adapter() = default;
  virtual AdapterKind kind() const = 0;
  virtual torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& weight, const WeightMask& mask,
                                const torch::Tensor& bias) const = 0;
  // The weight after merging the adapter into `weight`; no gradients.
  virtual torch::Tensor merged(const torch::Tensor& weight, const WeightMask& mask) const = 0;
  // What the optimizer trains: the weight itself (masked-ft) or the low-rank factors.
  virtual std::vector<torch::Tensor> trainable(const torch::Tensor& weight) const = 0;
  // The low-rank factors A [r, in], B [out, r] and scale s of LoRA adapters; undefined / 0 otherwise.
  virtual const torch::Tensor& lora_A() const;
  virtual const torch::Tensor& lora_B() const;
  virtual double lora_scale() const { return 0.0; }
};

// While one is alive on this thread, LinearImpl's constructor leaves its weight uninitialised:
// load_model builds models under it because every weight is then read from the checkpoint, and
// pages of an uninitialised allocation are never touched, so a 7B model's fp32-sized weights cost
// no memory before they are replaced (docs/architecture.md, "Memory when loading").
class SkipWeightInit {
 public:
  SkipWeightInit();
  ~SkipWeightInit();
  SkipWeightInit(const SkipWeightInit&) = delete;
  SkipWeightInit& operator=(const SkipWeightInit&) = delete;
  static bool active();

 private:
  bool previous_;
};

class LinearImpl : public torch::nn::Module {
 public:
  LinearImpl(int64_t in_features, int64_t out_features, bool bias);
  // x [..., in] -> [..., out]
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_features() const { return weight.size(1); }
  int64_t out_features() const { return weight.size(0); }

  torch::Tensor weight;  // [out, in]; registered parameter, as in torch::nn::Linear
  torch::Tensor bias;    // [out] or undefined

  // ---- pruning mask ----
  const torch::Tensor& mask() const { return mask_.tensor(); }  // bool [out, in] or undefined
  void set_mask(const torch::Tensor& mask) { mask_.set(mask, weight); }
  void clear_mask() { mask_.reset(); }

  // ---- adapter ----
  // For SparseLora/Lora: rank r, alpha; A [r, in] Kaiming-uniform, B [out, r] zeros, s = alpha / r;
  // the base weight is frozen. For MaskedFt the weight trains. One adapter at a time.
  void attach_adapter(AdapterKind kind, int64_t rank, double alpha);
  AdapterKind adapter_kind() const { return adapter_ ? adapter_->kind() : AdapterKind::None; }
  std::vector<torch::Tensor> trainable_parameters() const;
  const torch::Tensor& lora_A() const;
  const torch::Tensor& lora_B() const;
  double lora_scale() const { return adapter_ ? adapter_->lora_scale() : 0.0; }
  // The weight the layer would have after merging its adapter ((W + sBA) ⊙ M for sparse-lora,
  // W + sBA for lora, W ⊙ M otherwise). No-grad.
  torch::Tensor merged_weight() const;
  // Replaces weight by merged_weight() and drops the adapter.
  void merge_adapter();

  // ---- distillation teacher ----
  void set_teacher_weight(const torch::Tensor& w0) { teacher_weight_ = w0; }
  const torch::Tensor& teacher_weight() const { return teacher_weight_; }
  void set_teacher_mode(bool on) { teacher_mode_ = on; }
  bool teacher_mode() const { return teacher_mode_; }
  void drop_teacher() { teacher_weight_ = torch::Tensor(), teacher_mode_ = false; }

  // ---- compressed copy for inference ----
  // Attaches `w` (same shape as weight) and stamps it with the weight's current version.
  void set_compressed(std::shared_ptr<SparseWeight> w);
  const SparseWeight* compressed() const { return compressed_.get(); }
  void drop_compressed();  // dense path only from now on (refused once the dense copy is released)
  // Frees the dense weight (inference from the compressed copy only): `weight` becomes a
  // shape-only placeholder (one float of storage, zero strides) and forward() runs only through
  // the sparse kernels, throwing where it would need the dense weight.
  void release_dense();
  bool dense_released() const { return dense_released_; }
  // The weight as a dense tensor: `weight`, or, when the dense copy was released, a fresh copy
  // decompressed from the compressed one (for reports; not a parameter).
  torch::Tensor dense_weight_copy() const;
  // Whether forward(x) would take the sparse path now (a prefill-sized x on a bitmask weight that
  // keeps over 40% of its values goes through BLAS while the dense copy is there: faster, same answers).
  bool uses_sparse_path(const torch::Tensor& x) const;

  // ---- calibration ----
  // Called with forward()'s input x [..., in] before anything else (pruning calibration
  // captures each layer's inputs this way); nullptr = none.
  void set_input_hook(std::function<void(const torch::Tensor&)> hook) { input_hook_ = std::move(hook); }
  bool has_input_hook() const { return static_cast<bool>(input_hook_); }
  // Feeds x to the hook without running the product (a stage whose output is not needed).
  void feed_input_hook(const torch::Tensor& x) const { if (input_hook_) input_hook_(x); }

 private:
  WeightMask mask_;
  std::unique_ptr<Adapter> adapter_;
  torch::Tensor teacher_weight_;
  bool teacher_mode_ = false;
  std::shared_ptr<const SparseWeight> compressed_;
  bool dense_released_ = false;
  std::function<void(const torch::Tensor&)> input_hook_;
};
TORCH_MODULE(Linear);

}  // namespace ressa::model
