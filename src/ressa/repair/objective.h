// The cross-modality repair objective (method.md §3), over answer positions only:
//   L = (1-λ)·CE(student, answer tokens) + λ·T²·KL(p_teacher,T || p_student,T)
// Both terms average over the positions whose logits predict an answer token (batch.loss_mask);
// prompt and padding positions are gathered away before any softmax, so their logits cannot
// reach the loss (method.md §5 defect 4).
#pragma once
#include <torch/torch.h>

#include "ressa/model/llava.h"
#include "ressa/train/vqa_data.h"

namespace ressa::repair {

// loss_mask [B,T-1] (1 = logits at t predict an answer token) -> int64 [K] flat indices into the
// [B*(T-1)] grid of predicting positions.
torch::Tensor answer_positions(const torch::Tensor& loss_mask);

// logits [B,T,V], positions [K] from answer_positions -> [K,V] rows of the predicting positions.
torch::Tensor gather_positions(const torch::Tensor& logits, const torch::Tensor& positions);

// student/teacher logits [B,T,V], loss_mask [B,T-1] -> scalar T²·mean_k KL(p_t || p_s) at
// temperature T (0 when there are no answer positions). The teacher is detached.
torch::Tensor distillation_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                              const torch::Tensor& loss_mask, double temperature);

struct ObjectiveParts {
  torch::Tensor total;  // scalar, graph attached
  torch::Tensor ce;     // scalar mean CE over answer tokens
  torch::Tensor kd;     // scalar T²·KL (zeros when kd_weight == 0 and no teacher logits are given)
};

// student_logits [B,T,V]; teacher_logits [B,T,V] or undefined (only allowed when kd_weight == 0);
// batch from train::make_train_batch. kd_weight λ in [0,1], temperature T > 0.
ObjectiveParts repair_objective(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                const train::Batch& batch, double kd_weight, double temperature);

// Teacher logits [B,T,V] for a batch: the same modules in teacher mode (dense W0, no mask, no
// adapter) under NoGrad; teacher mode is switched off again even if the forward throws.
torch::Tensor teacher_logits(model::Llava& net, const train::Batch& batch);

// One repair step's loss: teacher forward (skipped when kd_weight == 0), then the student forward
// with graph, then repair_objective.
ObjectiveParts repair_loss(model::Llava& net, const train::Batch& batch, double kd_weight, double temperature);

}  // namespace ressa::repair
