// Activation checkpointing as one autograd node per block (see activation_checkpoint.h).
#include "ressa/model/activation_checkpoint.h"

namespace ressa::model {

namespace {

// The block travels in the node's saved data as a capsule (saved data holds IValues only).
struct BlockHolder : torch::CustomClassHolder {
  explicit BlockHolder(BlockFn f) : fn(std::move(f)) {}
  BlockFn fn;
};

struct Checkpointed : torch::autograd::Function<Checkpointed> {
  // `anchor` is a tensor that requires grad, so the node is recorded (and its backward reaches
  // the block's parameters) even when x does not require grad, as for the first block.
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& anchor, const BlockFn& block) {
    (void)anchor;
    ctx->save_for_backward({x});
    ctx->saved_data["block"] = c10::IValue::make_capsule(c10::make_intrusive<BlockHolder>(block));
    return block(x);  // autograd records nothing inside forward
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    auto holder = c10::static_intrusive_pointer_cast<BlockHolder>(ctx->saved_data["block"].toCapsule());
    auto x = ctx->get_saved_variables()[0].detach().requires_grad_(true);
    torch::Tensor y;
    {
      torch::AutoGradMode on(true);
      y = holder->fn(x);
    }
    // A backward pass inside this one (autograd allows re-entry): the block's parameters get
    // their gradients accumulated into .grad, x its own, which this node passes on.
    torch::autograd::backward({y}, {grad[0]});
    return {x.grad(), torch::Tensor(), torch::Tensor()};  // x, anchor, block
  }
};

}  // namespace

torch::Tensor checkpointed(const BlockFn& block, const torch::Tensor& x) {
  if (!torch::GradMode::is_enabled()) return block(x);
  static const torch::Tensor anchor = torch::zeros({}, torch::requires_grad());
  return Checkpointed::apply(x, anchor, block);
}

}  // namespace ressa::model
