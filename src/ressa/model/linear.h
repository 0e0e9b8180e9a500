// Linear layer with the optional pruning/repair state ressa needs, in one place:
//   plain:        y = x W^T + b
//   masked-ft:    y = x (W ⊙ M)^T + b                       (W trains, gradient only at kept positions)
//   sparse-lora:  y = x ((W + s·B·A) ⊙ M)^T + b             (A, B train; M absent = dense LoRA-merge)
//   lora:         y = x W^T + b + s·(x A^T) B^T             (plain LoRA baseline; merge fills zeros)
//   teacher mode: y = x W0^T + b  with W0 = dense_weight (the weight before pruning) when set, else
//                 the frozen weight; masks and adapters are bypassed (distillation teacher)
// The registered parameter names ("weight", "bias") are the checkpoint keys.
#pragma once
#include <torch/torch.h>

#include <functional>

namespace ressa::model {

enum class AdapterKind { None, SparseLora, Lora, MaskedFt };
AdapterKind parse_adapter_kind(const std::string& s);  // "none","sparse-lora","lora","masked-ft"
std::string to_string(AdapterKind k);

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
  // Called with forward()'s input x [..., in] before anything else (pruning calibration
  // captures each layer's inputs this way); empty = no hook.
  std::function<void(const torch::Tensor&)> input_hook;
};
TORCH_MODULE(Linear);

}  // namespace ressa::model
