// The optimisation loop shared by dense training and repair: AdamW, linear warm-up + cosine
// decay, global-norm gradient clipping, deterministic shuffling, periodic validation,
// checkpoints (parameters + optimizer state + step) every N steps, and exact --resume.
// Data parallel when given a process group (dist/group.h): every rank computes the same global
// batch indices, takes its shard, and the gradients are all-reduced so that each step equals the
// single-process step on the whole global batch; only rank 0 validates and writes checkpoints.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "ressa/core/progress.h"
#include "ressa/dist/group.h"

namespace ressa::train {

struct LoopOptions {
  int64_t steps = 1000;            // optimizer steps
  int64_t batch = 32;              // examples per step
  // Gradient accumulation: each process runs its share of a step's batch in chunks of at most
  // this many examples, one forward and backward at a time, so activations are held for one
  // chunk only (0 = the whole share at once). Same gradients as the whole share up to float
  // rounding: each chunk's mean is backpropagated times its weight, the sum divided by the total.
  int64_t micro_batch = 0;
  double lr = 1e-3;                // peak learning rate
  double min_lr_ratio = 0.1;       // cosine floor as a fraction of lr (1 = constant after warm-up)
  int64_t warmup = 100;            // linear warm-up steps
  double weight_decay = 0.01;      // AdamW decoupled decay
  double grad_clip = 1.0;          // global L2 norm; 0 disables
  int64_t eval_every = 0;          // validate every N steps (0 = only at the end)
  int64_t checkpoint_every = 200;  // write <checkpoint_dir> every N steps (0 = never)
  uint64_t seed = 0;               // data order
  std::string checkpoint_dir;      // where resumable state goes ("" = none)
  bool resume = false;             // continue from checkpoint_dir
  int64_t stop_after = 0;          // testing aid: checkpoint and stop after this step, as if killed (0 = off)
  std::shared_ptr<dist::Group> group;  // data-parallel group (null or size 1 = one process); batch is global
  void validate() const;           // throws std::invalid_argument naming the bad field
};

// One batch's loss: a mean over `weight` units (answer tokens for the VQA losses). Data-parallel
// ranks combine their means weighted by `weight`, so the result is the mean over the global batch.
struct StepLoss {
  StepLoss(torch::Tensor l, double w = 1.0) : loss(std::move(l)), weight(w) {}  // NOLINT: implicit on purpose
  torch::Tensor loss;  // scalar, graph attached
  double weight;       // number of units averaged (> 0; 0 only if the batch has none)
};

struct LoopHooks {
  // Loss for one batch of example indices (graph attached). Required. With a process group it
  // gets this rank's shard of the step's global batch.
  std::function<StepLoss(const std::vector<int64_t>& idx)> loss;
  // Called with the 0-based step number before that step's loss (optional): for per-step
  // randomness that must not depend on how the batch is sharded over processes.
  std::function<void(int64_t step)> on_step;
  // Validation score (higher is better), called at eval_every and at the end, on rank 0 only. Optional.
  std::function<double()> validate;
  ProgressSink progress;
};

struct LoopResult {
  int64_t steps = 0;
  int64_t start_step = 0;  // > 0 when resumed
  double final_loss = 0;   // mean loss of the last min(50, steps) steps
  double seconds = 0;
  double examples_per_s = 0;
  std::vector<std::pair<int64_t, double>> validation;  // (step, score); rank 0 only
  bool interrupted = false;  // stopped by stop_after: the caller must not write final outputs
};

// Trains `params` (all must require grad) on `n_examples` examples.
LoopResult run_loop(const std::vector<torch::Tensor>& params, int64_t n_examples, const LoopOptions& opts,
                    const LoopHooks& hooks);

// Learning rate at `step` (0-based) under the schedule.
double scheduled_lr(const LoopOptions& opts, int64_t step);

// The example indices of step `step`: epoch-wise permutations from (seed, epoch), so any step
// can be recomputed after a resume.
std::vector<int64_t> batch_indices(uint64_t seed, int64_t n_examples, int64_t batch, int64_t step);

}  // namespace ressa::train
