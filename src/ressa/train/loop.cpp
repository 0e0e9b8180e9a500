// AdamW training loop with schedule, clipping, checkpoints and resume (see loop.h).
#include "ressa/train/loop.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"

namespace fs = std::filesystem;

namespace ressa::train {

void LoopOptions::validate() const {
  RESSA_CHECK_ARG(steps > 0, "[train] --steps must be > 0, got ", steps);
  RESSA_CHECK_ARG(batch > 0, "[train] --batch must be > 0, got ", batch);
  RESSA_CHECK_ARG(micro_batch >= 0, "[train] --micro-batch must be >= 0, got ", micro_batch);
  RESSA_CHECK_ARG(lr > 0 && std::isfinite(lr), "[train] --lr must be > 0, got ", lr);
  RESSA_CHECK_ARG(min_lr_ratio >= 0 && min_lr_ratio <= 1, "[train] min_lr_ratio must be in [0,1], got ", min_lr_ratio);
  RESSA_CHECK_ARG(warmup >= 0, "[train] --warmup must be >= 0, got ", warmup);
  RESSA_CHECK_ARG(weight_decay >= 0, "[train] --weight-decay must be >= 0, got ", weight_decay);
  RESSA_CHECK_ARG(grad_clip >= 0, "[train] --grad-clip must be >= 0, got ", grad_clip);
  RESSA_CHECK_ARG(!resume || !checkpoint_dir.empty(), "[train] --resume needs a checkpoint directory");
  RESSA_CHECK_ARG(!group || batch >= group->size(), "[train] --batch ", batch, " is the global batch and must be >= the ",
                  group ? group->size() : 1, " processes (each takes a share)");
}

namespace {
void check_loss(double lv, int64_t step) {
  RESSA_CHECK(std::isfinite(lv), "[train] loss is ", lv, " at step ", step + 1,
              " (diverged); nothing was written for this step — lower --lr or check the data");
}

// LoopOptions::micro_batch: each chunk's Σ (its mean × its weight) is backpropagated as it is
// computed (its activations freed), then the gradients are divided by the total weight, after
// the ranks' totals are summed when there is a group. Returns the step's mean loss.
double accumulate_chunks(const LoopHooks& hooks, const std::vector<int64_t>& local, int64_t chunk,
                         const std::vector<torch::Tensor>& params, dist::Group* group, int64_t step) {
  double sum = 0, weight = 0;
  torch::Device device = torch::kCPU;
  for (size_t b0 = 0; b0 < local.size(); b0 += static_cast<size_t>(chunk)) {
    const std::vector<int64_t> part(local.begin() + b0,
                                    local.begin() + std::min(local.size(), b0 + static_cast<size_t>(chunk)));
    auto sl = hooks.loss(part);
    device = sl.loss.device();
    sum += sl.loss.item<double>() * sl.weight;
    weight += sl.weight;
    (sl.loss * sl.weight).backward();
  }
  if (group) {
    auto stats = torch::tensor({sum, weight}, torch::kFloat64).to(device);
    group->allreduce_sum(stats, "loss all-reduce");
    stats = stats.cpu();
    sum = stats[0].item<double>();
    weight = stats[1].item<double>();
  }
  const double lv = weight > 0 ? sum / weight : 0.0;
  check_loss(lv, step);
  torch::NoGradGuard ng;
  for (const auto& p : params)
    if (p.grad().defined()) p.grad().mul_(weight > 0 ? 1.0 / weight : 0.0);
  if (group) group->allreduce_gradients(params);
  return lv;
}
}  // namespace

double scheduled_lr(const LoopOptions& o, int64_t step) {
  if (step < o.warmup) return o.lr * static_cast<double>(step + 1) / static_cast<double>(o.warmup);
  const double span = std::max<int64_t>(1, o.steps - o.warmup);
  const double p = std::min(1.0, static_cast<double>(step - o.warmup) / span);
  const double cosine = 0.5 * (1.0 + std::cos(M_PI * p));
  return o.lr * (o.min_lr_ratio + (1.0 - o.min_lr_ratio) * cosine);
}

std::vector<int64_t> batch_indices(uint64_t seed, int64_t n, int64_t batch, int64_t step) {
  std::vector<int64_t> out;
  out.reserve(batch);
  int64_t pos = step * batch;
  int64_t cached_epoch = -1;
  std::vector<int64_t> perm;
  while (static_cast<int64_t>(out.size()) < batch) {
    const int64_t epoch = pos / n;
    if (epoch != cached_epoch) {
      perm.resize(n);
      for (int64_t i = 0; i < n; ++i) perm[i] = i;
      std::mt19937_64 rng(seed * 1000003ull + static_cast<uint64_t>(epoch));
      for (int64_t i = n - 1; i > 0; --i) std::swap(perm[i], perm[rng() % static_cast<uint64_t>(i + 1)]);
      cached_epoch = epoch;
    }
    out.push_back(perm[pos % n]);
    ++pos;
  }
  return out;
}

namespace {
const char* kParams = "params.pt";
const char* kOptim = "optimizer.pt";
const char* kState = "state.json";

void save_checkpoint(const std::string& dir, const std::vector<torch::Tensor>& params, torch::optim::AdamW& optim,
                     int64_t step, const std::vector<double>& recent) {
  fs::create_directories(dir);
  // Each file goes through temp + rename; state.json last, so a kill mid-way leaves either the
  // previous step's complete set or files newer than state.json that are ignored on resume.
  const std::string tmp = dir + "/.tmp";
  std::vector<torch::Tensor> cpu;
  for (auto& p : params) cpu.push_back(p.detach().cpu());
  torch::save(cpu, tmp + kParams);
  torch::save(optim, tmp + kOptim);
  nlohmann::json st = {{"step", step}, {"recent_losses", recent}};
  fs::rename(tmp + kParams, dir + "/" + std::to_string(step) + "." + kParams);
  fs::rename(tmp + kOptim, dir + "/" + std::to_string(step) + "." + kOptim);
  write_file_atomic(dir + "/" + kState, st.dump());
  // Remove older step files now that state.json points at the new ones.
  for (auto& e : fs::directory_iterator(dir)) {
    const std::string name = e.path().filename().string();
    const auto dot = name.find('.');
    if (dot == std::string::npos || name[0] == '.' || name == kState) continue;
    if (name.substr(0, dot) != std::to_string(step)) fs::remove(e.path());
  }
}

int64_t load_checkpoint(const std::string& dir, const std::vector<torch::Tensor>& params, torch::optim::AdamW& optim,
                        std::vector<double>& recent) {
  const std::string state_path = dir + "/" + kState;
  RESSA_CHECK(fs::exists(state_path), "[resume] ", state_path, ": no checkpoint to resume from");
  nlohmann::json st;
  try {
    st = nlohmann::json::parse(read_file(state_path));
  } catch (const nlohmann::json::exception& e) {
    fail("[resume] ", state_path, ": corrupt checkpoint state: ", e.what());
  }
  RESSA_CHECK(st.contains("step") && st["step"].is_number_integer(), "[resume] ", state_path, ": missing 'step'");
  const int64_t step = st["step"].get<int64_t>();
  recent = st.value("recent_losses", std::vector<double>{});
  std::vector<torch::Tensor> saved;
  const std::string ppath = dir + "/" + std::to_string(step) + "." + kParams;
  try {
    torch::load(saved, ppath);
    torch::load(optim, dir + "/" + std::to_string(step) + "." + kOptim);
  } catch (const c10::Error& e) {
    fail("[resume] ", dir, ": cannot read checkpoint of step ", step, ": ", e.what_without_backtrace());
  }
  RESSA_CHECK(saved.size() == params.size(), "[resume] ", ppath, ": holds ", saved.size(), " tensors, the run has ",
              params.size(), " trainable tensors (different settings?)");
  torch::NoGradGuard ng;
  for (size_t i = 0; i < params.size(); ++i) {
    RESSA_CHECK(saved[i].sizes() == params[i].sizes(), "[resume] ", ppath, ": tensor ", i, " has shape ",
                saved[i].sizes(), ", expected ", params[i].sizes());
    params[i].copy_(saved[i]);
  }
  return step;
}
}  // namespace

LoopResult run_loop(const std::vector<torch::Tensor>& params, int64_t n_examples, const LoopOptions& o,
                    const LoopHooks& hooks) {
  o.validate();
  RESSA_CHECK_ARG(n_examples > 0, "[train] no training examples");
  RESSA_CHECK_ARG(!params.empty(), "[train] nothing to train");
  torch::optim::AdamW optim(params, torch::optim::AdamWOptions(o.lr).weight_decay(o.weight_decay));
  LoopResult res;
  std::vector<double> recent;
  int64_t step = 0;
  // Every rank reads the same checkpoint; then rank 0's values are broadcast, so the replicas
  // start identical even if initialisation differed.
  if (o.resume) step = load_checkpoint(o.checkpoint_dir, params, optim, recent);
  const bool dp = o.group && o.group->size() > 1;
  const bool root = !o.group || o.group->is_root();
  if (dp) o.group->broadcast_from_root(params);
  res.start_step = step;
  Progress progress("step", o.steps, root ? hooks.progress : ProgressSink());
  const auto t0 = std::chrono::steady_clock::now();
  for (; step < o.steps; ++step) {
    const double lr = scheduled_lr(o, step);
    for (auto& g : optim.param_groups()) static_cast<torch::optim::AdamWOptions&>(g.options()).lr(lr);
    optim.zero_grad();
    const auto idx = batch_indices(o.seed, n_examples, o.batch, step);
    if (hooks.on_step) hooks.on_step(step);
    double lv = 0;
    const auto local = dp ? dist::shard_indices(idx, o.group->rank(), o.group->size()) : idx;
    if (o.micro_batch > 0 && o.micro_batch < static_cast<int64_t>(local.size())) {
      lv = accumulate_chunks(hooks, local, o.micro_batch, params, dp ? o.group.get() : nullptr, step);
    } else if (!dp) {
      auto loss = hooks.loss(idx).loss;
      lv = loss.item<double>();
      check_loss(lv, step);
      loss.backward();
    } else {
      // Global mean = Σ_r weight_r·mean_r / Σ_r weight_r: all-reduce (weight·mean, weight) first,
      // backpropagate mean_r·weight_r/W, then sum the gradients over ranks. A NaN on any rank
      // reaches every rank through the sum, so all stop at the same step.
      auto sl = hooks.loss(local);
      const double local_mean = sl.loss.item<double>();
      auto stats = torch::tensor({local_mean * sl.weight, sl.weight}, torch::kFloat64).to(sl.loss.device());
      o.group->allreduce_sum(stats, "loss all-reduce");
      stats = stats.cpu();
      const double total = stats[1].item<double>();
      lv = total > 0 ? stats[0].item<double>() / total : 0.0;
      check_loss(lv, step);
      (sl.loss * (total > 0 ? sl.weight / total : 0.0)).backward();
      o.group->allreduce_gradients(params);
    }
    if (o.grad_clip > 0) torch::nn::utils::clip_grad_norm_(params, o.grad_clip);
    optim.step();
    recent.push_back(lv);
    if (recent.size() > 50) recent.erase(recent.begin());
    double mean = 0;
    for (double v : recent) mean += v;
    mean /= static_cast<double>(recent.size());
    char extra[96];
    std::snprintf(extra, sizeof extra, "loss %.4f lr %.2e", mean, lr);
    progress.update(step + 1, extra);
    const bool last = step + 1 == o.steps;
    if (hooks.validate && o.eval_every > 0 && (step + 1) % o.eval_every == 0 && !last) {
      if (root) {
        const double score = hooks.validate();
        res.validation.emplace_back(step + 1, score);
        if (hooks.progress) hooks.progress("validation at step " + std::to_string(step + 1) + ": " + std::to_string(score), false);
      }
      if (dp) o.group->root_done("validation@" + std::to_string(step + 1));
    }
    const bool stop = o.stop_after > 0 && step + 1 == o.stop_after && !last;
    if (!o.checkpoint_dir.empty() && (stop || (o.checkpoint_every > 0 && ((step + 1) % o.checkpoint_every == 0 || last)))) {
      if (root) save_checkpoint(o.checkpoint_dir, params, optim, step + 1, recent);
      if (dp) o.group->root_done("checkpoint@" + std::to_string(step + 1));
    }
    if (stop) {
      res.interrupted = true;
      res.steps = step + 1;
      return res;
    }
  }
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.steps = o.steps;
  for (double v : recent) res.final_loss += v / static_cast<double>(recent.size());
  res.examples_per_s = res.seconds > 0 ? (o.steps - res.start_step) * o.batch / res.seconds : 0;
  if (hooks.validate && root) {
    const double score = hooks.validate();
    res.validation.emplace_back(o.steps, score);
  }
  if (hooks.validate && dp) o.group->root_done("final validation");
  progress.finish(res.validation.empty() ? "" : "val " + std::to_string(res.validation.back().second));
  return res;
}

}  // namespace ressa::train
