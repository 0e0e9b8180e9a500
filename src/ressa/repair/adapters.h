// The repair's view of the model: which Linears get adapters (SparseLoRA / LoRA / masked
// finetuning) with which rank, the dense teacher weights W0 loaded into the pruned Linears, and
// the merge that turns adapters back into plain weights while keeping every pruned zero.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "ressa/model/llava.h"

namespace ressa::repair {

// Which parts of the model are adapted (--targets vision,language,projector).
struct Targets {
  bool vision = true, language = true, projector = true;
};
// "vision,language,projector" (any non-empty subset, any order, or "all") -> Targets.
Targets parse_targets(const std::string& csv);
std::string to_string(const Targets& t);

struct AdapterOptions {
  model::AdapterKind kind = model::AdapterKind::SparseLora;
  Targets targets;
  int64_t rank_vision = 4;    // LoRA rank in the vision blocks (method.md §2)
  int64_t rank_language = 8;  // LoRA rank in the language blocks
  int64_t rank_projector = 2; // LoRA rank of the projector's linear_1 / linear_2
  double alpha = 16;          // scale s = alpha / rank
  void validate() const;      // throws std::invalid_argument naming the bad field
};

struct AdaptedLinear {
  std::string name;  // HF module name
  model::Linear lin;
  std::string tower;  // "vision", "language" or "projector"
};

// Freezes every parameter of `net`, then attaches `o.kind` to the target Linears: the vision /
// language block Linears that carry a pruning mask, and the projector's linear_1 / linear_2
// (dense, so SparseLoRA there is plain LoRA merged: W + sBA; masked like any other if it was
// pruned with --prune-projector). For masked-ft, a Linear with no
// dense_weight gets a copy of its current weight as dense_weight so the teacher stays fixed.
// A is initialised from torch's global generator (seed it first). Returns the adapted Linears in
// model order.
std::vector<AdaptedLinear> attach_adapters(model::Llava& net, const AdapterOptions& o);

// The trainable tensors of the adapted Linears (lora_A, lora_B; or weight for masked-ft) in a
// fixed order (the checkpoint order).
std::vector<torch::Tensor> trainable_parameters(const std::vector<AdaptedLinear>& adapted);

struct TeacherInfo {
  int64_t dense_linears = 0;  // Linears given a dense_weight (weights that pruning changed)
  int64_t dense_bytes = 0;    // bytes of those W0 (in the dense checkpoint's dtype, read in place on CPU)
};

// Loads W0 from the dense model directory into dense_weight of every Linear of `net` (the pruned
// student) whose weight differs from the dense one, on `device`; only masked (pruned) Linears may
// differ. Every other tensor must be bitwise equal in both models (pruning never changes
// embeddings, norms, biases or unpruned Linears), so the teacher forward in teacher mode is
// exactly the dense model's forward. lm_head / projector Linears pruned by `ressa prune
// --prune-lm-head/--prune-projector` get their W0 like any other pruned Linear.
// Throws std::invalid_argument naming both directories and the tensor on any mismatch.
TeacherInfo attach_dense_teacher(model::Llava& net, const std::string& dense_dir, const std::string& pruned_dir,
                                 const torch::Device& device);

struct MergeReport {
  int64_t layers = 0;                   // adapted Linears merged
  int64_t pruned_positions = 0;         // mask zeros over the merged Linears
  int64_t filled_pruned_positions = 0;  // of those, non-zero after the merge (lora only; else 0)
};

// Merges every adapter into its weight (sparse-lora: (Wp + sBA) ⊙ M; lora: Wp + sBA; masked-ft:
// W ⊙ M) and drops the teacher weights. For sparse-lora / masked-ft, verifies that every pruned
// position is exactly zero and throws std::runtime_error naming the layer otherwise. For lora,
// counts the pruned positions it filled and drops the mask of every Linear it filled.
MergeReport merge_adapters(model::Llava& net, const std::vector<AdaptedLinear>& adapted, model::AdapterKind kind);

}  // namespace ressa::repair
