// Activation checkpointing (`--checkpointing`): a block's forward pass runs without recording
// its graph, keeping only its input; backward runs the block again with gradients on and
// backpropagates through that recomputed graph. A model then holds one tensor per block plus
// one block's intermediates, for one more forward pass per step (docs/architecture.md "Memory
// when repairing").
#pragma once
#include <torch/torch.h>

#include <functional>

namespace ressa::model {

// A block: input [B, T, D] -> output of the same batch. It may close over other tensors (RoPE
// tables, the attention bias) that do not require gradients; its parameters may.
using BlockFn = std::function<torch::Tensor(const torch::Tensor&)>;

// block(x) with the same value and the same gradients (for x and for every parameter the block
// uses, accumulated into their .grad) up to float rounding, holding only x for backward. With
// gradients off it is block(x). The block must be deterministic (ressa's blocks have no dropout).
torch::Tensor checkpointed(const BlockFn& block, const torch::Tensor& x);

}  // namespace ressa::model
