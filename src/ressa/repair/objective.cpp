// Repair objective: answer-position CE + temperature-scaled KL distillation from the dense teacher.
#include "ressa/repair/objective.h"

#include "ressa/core/error.h"
#include "ressa/io/file_pages.h"

namespace ressa::repair {

torch::Tensor answer_positions(const torch::Tensor& loss_mask) {
  RESSA_CHECK_ARG(loss_mask.dim() == 2, "[answer_positions] loss_mask must be [B,T-1], got ", loss_mask.sizes());
  return loss_mask.reshape({-1}).gt(0.5).nonzero().reshape({-1});
}

torch::Tensor gather_positions(const torch::Tensor& logits, const torch::Tensor& positions) {
  RESSA_CHECK_ARG(logits.dim() == 3, "[gather_positions] logits must be [B,T,V], got ", logits.sizes());
  const int64_t V = logits.size(2);
  return logits.slice(1, 0, logits.size(1) - 1).reshape({-1, V}).index_select(0, positions);
}

torch::Tensor distillation_kl(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                              const torch::Tensor& loss_mask, double temperature) {
  RESSA_CHECK_ARG(temperature > 0 && std::isfinite(temperature), "[distillation_kl] temperature must be > 0, got ",
                  temperature);
  RESSA_CHECK_ARG(student_logits.sizes() == teacher_logits.sizes(), "[distillation_kl] student logits ",
                  student_logits.sizes(), " and teacher logits ", teacher_logits.sizes(), " differ in shape");
  RESSA_CHECK_ARG(loss_mask.dim() == 2 && loss_mask.size(0) == student_logits.size(0) &&
                      loss_mask.size(1) == student_logits.size(1) - 1,
                  "[distillation_kl] loss_mask ", loss_mask.sizes(), " does not match logits ", student_logits.sizes());
  auto pos = answer_positions(loss_mask);
  if (pos.numel() == 0) return student_logits.sum() * 0.0;
  auto s = torch::log_softmax(gather_positions(student_logits, pos) / temperature, -1);    // [K,V]
  auto t = torch::log_softmax(gather_positions(teacher_logits.detach(), pos) / temperature, -1);
  // KL(p_t || p_s) = Σ_v p_t (log p_t - log p_s), one value per position, then the mean.
  auto kl = (t.exp() * (t - s)).sum(-1);
  return kl.mean() * (temperature * temperature);
}

ObjectiveParts repair_objective(const torch::Tensor& student_logits, const torch::Tensor& teacher_logits,
                                const train::Batch& batch, double kd_weight, double temperature) {
  RESSA_CHECK_ARG(kd_weight >= 0 && kd_weight <= 1, "[repair_objective] kd_weight must be in [0,1], got ", kd_weight);
  RESSA_CHECK_ARG(kd_weight == 0 || teacher_logits.defined(),
                  "[repair_objective] kd_weight ", kd_weight, " > 0 needs teacher logits");
  auto pos = answer_positions(batch.loss_mask);
  auto tgt = batch.ids.slice(1, 1).reshape({-1}).index_select(0, pos);  // [K] answer tokens
  ObjectiveParts out;
  out.ce = pos.numel() == 0 ? student_logits.sum() * 0.0
                            : torch::nn::functional::cross_entropy(gather_positions(student_logits, pos), tgt);
  out.kd = teacher_logits.defined() ? distillation_kl(student_logits, teacher_logits, batch.loss_mask, temperature)
                                    : torch::zeros({}, student_logits.options());
  out.total = kd_weight == 0 ? out.ce : (1.0 - kd_weight) * out.ce + kd_weight * out.kd;
  return out;
}

torch::Tensor teacher_logits(model::Llava& net, const train::Batch& b) {
  struct Guard {
    model::Llava& n;
    ~Guard() { n->set_teacher_mode(false); }
  } guard{net};
  torch::NoGradGuard ng;
  net->set_teacher_mode(true);
  return net->forward(b.pixels, b.ids, b.attn);
}

ObjectiveParts repair_loss(model::Llava& net, const train::Batch& b, double kd_weight, double temperature) {
  torch::Tensor t;
  if (kd_weight > 0) {
    // The weights are file pages of the two checkpoints, read in place: each pass holds its own
    // model's, not both (docs/architecture.md "Memory when repairing"). The student's pages of the
    // previous step's backward pass go before the teacher's pass, the teacher's after it; dropped
    // pages fault back in from the page cache.
    io::release_all_file_pages();
    t = teacher_logits(net, b);
    io::release_all_file_pages();
  }
  auto s = net->forward(b.pixels, b.ids, b.attn);
  return repair_objective(s, t, b, kd_weight, temperature);
}

}  // namespace ressa::repair
