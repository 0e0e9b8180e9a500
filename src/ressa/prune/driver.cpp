// Whole-model pruning: calibration streams through the vision blocks, projector and language
// blocks; per-block input capture through each Linear's input hook; prune_matrix per Linear; output dir.
#include "ressa/prune/driver.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <unordered_map>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/core/runtime.h"
#include "ressa/core/version.h"
#include "ressa/data/dataset.h"
#include "ressa/data/image.h"
#include "ressa/io/file_pages.h"
#include "ressa/io/key_layout.h"
#include "ressa/io/model_files.h"
#include "ressa/model/checkpoint.h"
#include "ressa/prune/mask.h"
#include "ressa/prune/recipe_options.h"

namespace fs = std::filesystem;

namespace ressa::prune {

using Calib = PruneModelOptions::Calib;
using Allocation = PruneModelOptions::Allocation;

void PruneModelOptions::validate() const {
  method_opts.validate();
  RESSA_CHECK_ARG(calib_samples > 0, "[PruneModelOptions] calib_samples must be > 0, got ", calib_samples);
  RESSA_CHECK_ARG(calib_batch > 0, "[PruneModelOptions] calib_batch must be > 0, got ", calib_batch);
  RESSA_CHECK_ARG(activation_budget >= 0 && max_memory >= 0, "[PruneModelOptions] activation_budget and max_memory "
                  "must be >= 0, got ", activation_budget, " and ", max_memory);
  for (auto [p, tower] : {std::pair{&vision, "vision"}, std::pair{&language, "language"}}) {
    if (p->is_nm())
      RESSA_CHECK_ARG(p->n > 0 && p->m > p->n, "[PruneModelOptions] ", tower, " pattern needs 0 < N < M, got ", p->n,
                      ":", p->m);
    else
      RESSA_CHECK_ARG(p->ratio >= 0 && p->ratio < 1, "[PruneModelOptions] ", tower,
                      " sparsity must be in [0, 1), got ", p->ratio);
  }
  if (allocation == Allocation::Owl) {
    owl.validate();
    RESSA_CHECK_ARG(!vision.is_nm() && !language.is_nm(), "[prune] --allocation owl spreads an unstructured sparsity "
                    "over the blocks; an N:M pattern fixes every block's ratio (use --sparsity, or --allocation uniform)");
    // (an --override with an N:M pattern is allowed: those layers keep it)
  }
}

PruneModelOptions::Allocation parse_allocation(const std::string& s) {
  if (s == "uniform") return Allocation::Uniform;
  if (s == "owl") return Allocation::Owl;
  fail_arg("[prune] unknown allocation '", s, "' (expected uniform or owl)");
}

std::string to_string(PruneModelOptions::Allocation a) { return a == Allocation::Owl ? "owl" : "uniform"; }

PruneModelOptions::Calib parse_calib(const std::string& s) {
  if (s == "sequential") return Calib::Sequential;
  if (s == "dense") return Calib::Dense;
  fail_arg("[parse_calib] unknown calibration mode '", s, "' (expected sequential or dense)");
}

std::string to_string(PruneModelOptions::Calib c) { return c == Calib::Sequential ? "sequential" : "dense"; }

std::string combined_pattern(const SparsityPattern& v, const SparsityPattern& l) {
  if (v.to_string() == l.to_string()) return v.to_string();
  if (v.is_dense()) return l.to_string();
  if (l.is_dense()) return v.to_string();
  return "mixed";
}

std::vector<int64_t> calib_indices(int64_t n, int64_t k, uint64_t seed) {
  RESSA_CHECK_ARG(n >= 0 && k >= 0, "[calib_indices] need n, k >= 0, got n=", n, " k=", k);
  std::vector<int64_t> idx(n);
  for (int64_t i = 0; i < n; ++i) idx[i] = i;
  if (k >= n) return idx;
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < k; ++i) std::swap(idx[i], idx[i + static_cast<int64_t>(rng() % (n - i))]);
  idx.resize(k);
  std::sort(idx.begin(), idx.end());
  return idx;
}

train::VqaSet load_calibration_set(const data::DataSource& data, const data::Processor& proc,
                                   const io::LlavaConfig& cfg, int64_t k, uint64_t seed) {
  const data::Samples samples = data::read_samples(data, "train");
  RESSA_CHECK(!samples.items.empty(), "[load_calibration_set] ", samples.where, ": no examples");
  return train::build_vqa_set(samples, calib_indices(static_cast<int64_t>(samples.items.size()), k, seed), proc, cfg);
}

namespace {

// A read-only copy of `t` in `spill`'s file, alive as long as the tensor (it keeps the file).
torch::Tensor spilled(const std::shared_ptr<io::SpillFile>& spill, const torch::Tensor& t) {
  auto c = t.detach().to(torch::kCPU).contiguous();
  const void* p = spill->append(c.data_ptr(), c.nbytes());
  return torch::from_blob(const_cast<void*>(p), c.sizes(), [keep = spill](void*) {}, c.options());
}

// The stage's weights are not read again: weights read from a mapped checkpoint or spilled by a
// streamed run leave no pages resident, and the stage's freed temporaries go back to the system
// (docs/architecture.md "Memory when pruning").
void release_stage_memory() {
  io::release_all_file_pages();
  return_free_heap();
}

// Where one stage keeps its outputs (the next stage's inputs): in `dtype` (the checkpoint's 16 bits
// for a model loaded in its stored dtype, else the compute dtype), in memory, or, when a stage's
// input and output together would pass PruneModelOptions::activation_budget, in an unlinked scratch
// file read back through its mapping (the same bits). The first output decides for the stage.
class ActivationStore {
 public:
  // `spilled_bytes` counts what this store writes to disk.
  ActivationStore(const PruneModelOptions& o, int64_t batches, torch::ScalarType dtype, int64_t& spilled_bytes)
      : o_(o), batches_(batches), dtype_(dtype), spilled_bytes_(spilled_bytes) {}
  torch::Tensor keep(const torch::Tensor& out) {
    if (!out.defined() || !out.device().is_cpu()) return out;
    const auto t = out.is_floating_point() ? out.to(dtype_) : out;
    if (!decided_) {
      decided_ = true;
      const int64_t held = 2 * batches_ * static_cast<int64_t>(t.nbytes());
      if (o_.activation_budget > 0 && held > o_.activation_budget)
        spill_ = std::make_shared<io::SpillFile>(o_.scratch_dir.empty() ? fs::temp_directory_path().string()
                                                                        : o_.scratch_dir);
    }
    if (!spill_) return t;
    spilled_bytes_ += static_cast<int64_t>(t.nbytes());
    return spilled(spill_, t);
  }

 private:
  const PruneModelOptions& o_;
  int64_t batches_;
  torch::ScalarType dtype_;
  int64_t& spilled_bytes_;
  bool decided_ = false;
  std::shared_ptr<io::SpillFile> spill_;
};

// A stage input that was spilled is read again from the file when needed: its pages go once read.
void release_input(const torch::Tensor& t) {
  if (t.defined() && t.device().is_cpu()) io::release_file_pages(t.data_ptr(), t.nbytes());
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// One Linear to prune and its pattern. `block` is its block's index in its tower (-1 for the
// projector and lm_head). OWL may shift the ratio of an unstructured layer of a block by its
// block's (N:M patterns, the projector and lm_head keep theirs).
struct Target {
  std::string name, tower;
  model::Linear lin;
  SparsityPattern pattern;
  int64_t block = -1;
  bool allocated() const { return block >= 0 && !pattern.is_nm(); }
};

const std::string kVisionBlocks = "vision_tower.vision_model.encoder.layers.";
const std::string kLanguageBlocks = "language_model.model.layers.";

// Captures the inputs of a set of Linears through their input hooks while it lives, and keeps
// one LayerStats (with XᵀX) per distinct input tensor: layers that read the same tensor in a
// forward pass (q/k/v, gate/up) share statistics. The inputs seen in the current batch are held
// by weak references until next_batch(): their memory is freed as soon as the forward pass is done
// with them (a 7B down_proj's input is 0.4 GB per batch), but the TensorImpl objects stay
// allocated, so a freed tensor's address can never be mistaken for a shared input.
class Collector {
 public:
  Collector(std::vector<Target>& targets, bool need_hessian, torch::ScalarType hessian_dtype)
      : targets_(targets), stats_(targets.size()), need_hessian_(need_hessian), hessian_dtype_(hessian_dtype) {
    for (size_t i = 0; i < targets_.size(); ++i)
      targets_[i].lin->set_input_hook([this, i](const torch::Tensor& x) { feed(i, x); });
  }
  ~Collector() {
    for (auto& t : targets_) t.lin->set_input_hook(nullptr);
  }
  Collector(const Collector&) = delete;
  Collector& operator=(const Collector&) = delete;

  // Starts a batch; rows [B*T] bool selects the token rows that count (undefined = all).
  void next_batch(torch::Tensor rows = {}) {
    seen_.clear();
    seen_stats_.clear();
    rows_ = std::move(rows);
  }
  // x [..., d_in]: the input of target i.
  void feed(size_t i, const torch::Tensor& x) {
    for (size_t j = 0; j < seen_.size(); ++j) {
      if (seen_[j]._unsafe_get_target() == x.unsafeGetTensorImpl() && (!stats_[i] || stats_[i] == seen_stats_[j])) {
        stats_[i] = seen_stats_[j];
        return;
      }
    }
    if (!stats_[i]) stats_[i] = std::make_shared<LayerStats>(x.size(-1), need_hessian_, hessian_dtype_);
    auto rows = x.reshape({-1, x.size(-1)});
    if (rows_.defined()) rows = rows.index({rows_});
    stats_[i]->add_batch(rows);
    seen_.emplace_back(x.getIntrusivePtr());
    seen_stats_.push_back(stats_[i]);
  }
  const std::shared_ptr<LayerStats>& stats(size_t i) const { return stats_[i]; }

 private:
  std::vector<Target>& targets_;
  std::vector<std::shared_ptr<LayerStats>> stats_;
  bool need_hessian_;
  torch::ScalarType hessian_dtype_;
  std::vector<c10::weak_intrusive_ptr<c10::TensorImpl, c10::UndefinedTensorImpl>> seen_;
  std::vector<std::shared_ptr<LayerStats>> seen_stats_;
  torch::Tensor rows_;
};

// Every Linear the options prune, with its pattern, in the model's order: the default targets are
// both towers' block Linears (vision blocks up to the selected feature layer) plus the projector and
// lm_head when asked; --targets / --ignore select by name, --override sets a pattern by name.
std::vector<Target> plan_targets(model::Llava& net, const PruneModelOptions& o) {
  std::vector<Target> plan;
  const auto layout = net->config.key_layout;
  auto consider = [&](const std::string& name, model::Linear lin, const std::string& tower, bool default_target,
                      int64_t block) {
    const std::string file_name = io::to_file_name(name + ".weight", layout);
    const std::vector<std::string> names{name, file_name.substr(0, file_name.size() - 7)};
    if (!o.rules.selects(names, default_target)) return;
    const auto* ov = o.rules.override_for(names, default_target);
    const SparsityPattern& p = ov ? ov->pattern : tower == "vision" ? o.vision : o.language;
    if (p.is_dense()) return;
    if (tower == "lm_head")
      RESSA_CHECK_ARG(!net->language_model->tied, "[prune] lm_head is tied to embed_tokens (text_config.tie_word_embeddings) "
                      "and cannot be pruned on its own; ", o.prune_lm_head ? "drop --prune-lm-head" : "exclude it from --targets");
    RESSA_CHECK_ARG(!p.is_nm() || lin->in_features() % p.m == 0, "[prune_model] pattern ", p.to_string(),
                    " needs d_in divisible by ", p.m, ", but ", name, " has weight ", lin->weight.sizes());
    plan.push_back({name, tower, lin, p, block});
  };
  auto block_of = [](const std::string& name, const std::string& prefix) {
    return std::stoll(name.substr(prefix.size()));
  };
  for (auto& [name, lin] : net->vision_block_linears()) consider(name, lin, "vision", true, block_of(name, kVisionBlocks));
  auto& pr = net->multi_modal_projector;
  consider("multi_modal_projector.linear_1", pr->linear_1, "projector", o.prune_projector, -1);
  consider("multi_modal_projector.linear_2", pr->linear_2, "projector", o.prune_projector, -1);
  for (auto& [name, lin] : net->language_block_linears())
    consider(name, lin, "language", true, block_of(name, kLanguageBlocks));
  if (!net->language_model->tied || o.prune_lm_head || !o.rules.targets.empty())
    consider("language_model.lm_head", net->language_model->lm_head, "lm_head", o.prune_lm_head, -1);
  return plan;
}

// The targets of one stage: a tower's block, or a tower without blocks (projector, lm_head).
std::vector<Target> stage_targets(const std::vector<Target>& plan, const std::string& tower, int64_t block) {
  std::vector<Target> out;
  for (const auto& t : plan)
    if (t.tower == tower && t.block == block) out.push_back(t);
  return out;
}

// The dtype calibration activations are kept in between stages: a model whose block weights are
// held in their stored 16 bits (a streamed run of an fp16/bf16 checkpoint) keeps them in those 16
// bits, as the checkpoint's own framework would run it, halving what the activations take; any
// other model keeps the compute dtype (docs/architecture.md "Memory when pruning").
torch::ScalarType activation_dtype(model::Llava& net, torch::ScalarType compute) {
  const auto lins = net->language_block_linears();
  if (lins.empty()) return compute;
  const auto stored = lins.front().second->weight.scalar_type();
  return stored == torch::kHalf || stored == torch::kBFloat16 ? stored : compute;
}

// Streams calibration batches through a model's stages in order (vision blocks up to the
// selected feature layer, projector, language blocks, lm_head). In each stage with targets, a
// first pass collects the statistics of their inputs and hands them to visit(); the stage's
// outputs, the next stage's inputs, are those of that first pass, or, when visit() changed the
// stage (sequential pruning), of a second pass through it.
class CalibrationWalk {
 public:
  CalibrationWalk(model::Llava& net, std::vector<Target> plan, const PruneModelOptions& o)
      : net_(net), plan_(std::move(plan)), o_(o) {}
  virtual ~CalibrationWalk() = default;

  void run(const train::VqaSet& calib, const io::Tokenizer& tok, const torch::Device& device) {
    embed_calibration(calib, tok, device);
    vision_blocks();
    projector();
    language_blocks();
    lm_head();
  }
  int64_t calib_samples() const { return calib_samples_; }
  int64_t spilled_bytes() const { return spilled_bytes_; }

 protected:
  // Called once per stage with targets, after their statistics are collected.
  virtual void visit(std::vector<Target>& ts, const Collector& col) = 0;
  // Whether visit() changes the stage, so its outputs must be computed again.
  virtual bool changes_stage() const = 0;
  virtual bool needs_hessian() const = 0;

  model::Llava& net_;
  std::vector<Target> plan_;
  const PruneModelOptions& o_;

 private:
  using BatchFn = std::function<torch::Tensor(int64_t)>;

  // Calibration batches (right padded) and the first vision hidden state of each.
  void embed_calibration(const train::VqaSet& calib, const io::Tokenizer& tok, const torch::Device& device) {
    const auto idx = calib_indices(calib.size(), o_.calib_samples, o_.seed);
    calib_samples_ = static_cast<int64_t>(idx.size());
    std::vector<std::vector<int64_t>> batches;
    for (size_t s = 0; s < idx.size(); s += o_.calib_batch)
      batches.emplace_back(idx.begin() + s, idx.begin() + std::min(idx.size(), s + o_.calib_batch));
    nb_ = static_cast<int64_t>(batches.size());
    hid_.resize(nb_), ids_.resize(nb_), attn_.resize(nb_);
    std::optional<ActivationStore> store;  // made once the first batch gives the compute dtype
    for (int64_t b = 0; b < nb_; ++b) {
      auto bt = train::make_train_batch(calib, batches[b], tok, device);
      auto h = net_->vision_tower->vision_model->embed(bt.pixels);
      if (b == 0) {
        compute_dtype_ = h.scalar_type();
        store_dtype_ = activation_dtype(net_, compute_dtype_);
        store.emplace(o_, nb_, store_dtype_, spilled_bytes_);
      }
      hid_[b] = store->keep(h);
      ids_[b] = bt.ids;
      attn_[b] = bt.attn;
    }
  }

  // The vision blocks up to the hidden state image_features() selects (blocks past it never
  // reach the output); keeps that state as the projector's input.
  void vision_blocks() {
    const auto& cfg = net_->config;
    auto& vm = net_->vision_tower->vision_model;
    const int64_t feat_layer = cfg.vision_layers_used();
    const bool drop_cls = cfg.vision_feature_select_strategy == "default";
    auto take_features = [&] {
      feat_.resize(nb_);
      for (int64_t b = 0; b < nb_; ++b) feat_[b] = drop_cls ? hid_[b].slice(1, 1) : hid_[b];
    };
    if (feat_layer == 0) take_features();
    for (int64_t i = 0; i < feat_layer; ++i) {
      auto blk = vm->blocks[i];
      hid_ = run_stage(stage_targets(plan_, "vision", i), [&](int64_t b) { return blk(hidden(b)); }, nullptr);
      if (i + 1 == feat_layer) take_features();
    }
  }

  // The projector, then the language model's input embeddings (hid_ becomes [B, T, D]).
  void projector() {
    auto proj = run_stage(stage_targets(plan_, "projector", -1),
                          [&](int64_t b) { return net_->multi_modal_projector(feat_[b].to(compute_dtype_)); }, nullptr);
    feat_.clear();
    ActivationStore store(o_, nb_, store_dtype_, spilled_bytes_);
    for (int64_t b = 0; b < nb_; ++b) {
      hid_[b] = store.keep(net_->embed(ids_[b], proj[b].to(compute_dtype_)));
      release_input(proj[b]);
    }
  }

  // The decoder blocks; statistics only from real (non-padding) tokens.
  void language_blocks() {
    // RoPE tables and the additive causal+padding bias of each batch, as LlavaImpl::decode makes
    // them: the same for every block, so made once.
    std::vector<model::DecoderInputs> dec(nb_);
    for (int64_t b = 0; b < nb_; ++b)
      dec[b] = model::decoder_inputs(attn_[b], attn_[b].size(1), net_->config.text, compute_dtype_);
    auto& lm = net_->language_model->model;
    for (size_t i = 0; i < lm->blocks.size(); ++i) {
      auto blk = lm->blocks[i];
      hid_ = run_stage(stage_targets(plan_, "language", static_cast<int64_t>(i)),
                       [&](int64_t b) { return blk(hidden(b), dec[b].cos, dec[b].sin, dec[b].bias); }, real_rows());
    }
  }

  // lm_head: its input is fed to the hook directly (the [B, T, vocab] logits are not needed).
  void lm_head() {
    auto targets = stage_targets(plan_, "lm_head", -1);
    if (targets.empty()) return;
    auto& head = net_->language_model->lm_head;
    auto& lm = net_->language_model->model;
    run_stage(std::move(targets),
              [&](int64_t b) {
                head->feed_input_hook(lm->norm(hidden(b)));
                return torch::Tensor();
              },
              real_rows());
  }

  // Batch b's stage input in the compute dtype.
  torch::Tensor hidden(int64_t b) const { return hid_[b].to(compute_dtype_); }

  BatchFn real_rows() const {
    return [this](int64_t b) { return attn_[b].reshape({-1}).to(torch::kBool); };
  }

  // One stage: fwd(b) maps batch b through it; rows(b) selects the token rows that count for
  // the statistics (empty function = all). Returns the stage's outputs.
  std::vector<torch::Tensor> run_stage(std::vector<Target> ts, const BatchFn& fwd, const BatchFn& rows) {
    std::vector<torch::Tensor> out(nb_);
    ActivationStore store(o_, nb_, store_dtype_, spilled_bytes_);
    if (ts.empty()) {
      for (int64_t b = 0; b < nb_; ++b) out[b] = store.keep(fwd(b)), release_input(hid_[b]);
      release_stage_memory();
      return out;
    }
    const bool again = changes_stage();
    {
      Collector col(ts, needs_hessian(), o_.method_opts.hessian_dtype);
      for (int64_t b = 0; b < nb_; ++b) {
        col.next_batch(rows ? rows(b) : torch::Tensor());
        auto y = fwd(b);
        if (!again) out[b] = store.keep(y);
        release_input(hid_[b]);
      }
      col.next_batch();
      visit(ts, col);
    }
    if (again)
      for (int64_t b = 0; b < nb_; ++b) out[b] = store.keep(fwd(b)), release_input(hid_[b]);
    release_stage_memory();
    return out;
  }

  int64_t calib_samples_ = 0;
  int64_t spilled_bytes_ = 0;                    // calibration activations written to scratch files
  int64_t nb_ = 0;                               // calibration batches
  torch::ScalarType compute_dtype_ = torch::kFloat32, store_dtype_ = torch::kFloat32;
  std::vector<torch::Tensor> hid_, ids_, attn_;  // per batch; hid_: [B, 1+P, Dv], later [B, T, D]
  std::vector<torch::Tensor> feat_;              // per batch: [B, image_tokens, Dv]
};

// The pruning pass: each stage's targets are pruned from their statistics (weight and mask
// installed); with Sequential calibration the next stage sees the pruned stage's outputs.
class Pruner final : public CalibrationWalk {
 public:
  Pruner(model::Llava& net, std::vector<Target> plan, const PruneModelOptions& o, const ProgressSink& progress,
         InstallFn install)
      : CalibrationWalk(net, std::move(plan), o),
        prog_("prune", static_cast<int64_t>(plan_.size()), progress, 0.0),
        install_(std::move(install)) {}

  PruneReport finish() {
    prog_.finish();
    rep_.calib_samples = calib_samples();
    rep_.activation_spill_bytes = spilled_bytes();
    rep_.sparsity = eval::sparsity_report(net_);
    return std::move(rep_);
  }

 private:
  bool changes_stage() const override { return o_.calib == Calib::Sequential; }
  // SparseGPT's update needs H = 2/n XᵀX (d_in² float32 or float64 per layer input, built over every
  // calibration row: most of a Wanda run's time when it was built for every method); the others
  // measure each layer's error on a sample of its input rows (LayerStats::layer_error).
  bool needs_hessian() const override {
    return o_.method == Method::SparseGPT ||
           (o_.method == Method::DSnoT && o_.method_opts.dsnot_base == Method::SparseGPT);
  }

  void visit(std::vector<Target>& ts, const Collector& col) override {
    for (size_t i = 0; i < ts.size(); ++i) {
      auto& t = ts[i];
      prog_.update(done_, t.name);
      const auto& st = col.stats(i);
      RESSA_CHECK(st && st->nsamples() > 0, "[prune_model] layer ", t.name, " received no calibration inputs");
      const auto t0 = std::chrono::steady_clock::now();
      auto w = t.lin->weight.detach().to(torch::kFloat32);  // 16-bit when loaded in the stored dtype
      auto res = prune_matrix(w, *st, o_.method, t.pattern, o_.method_opts);
      LayerReport lr;
      lr.name = t.name;
      lr.tower = t.tower;
      lr.pattern = t.pattern.to_string();
      lr.recon_error = st->layer_error(w, res.weight);
      lr.sparsity = sparsity(res.weight);
      lr.calib_rows = st->nsamples();
      lr.input_sq_mean = st->col_norm_sq().sum().item<double>() / (static_cast<double>(st->nsamples()) * st->d_in());
      if (install_) {
        install_(*t.lin, res.weight, res.mask);
      } else {
        t.lin->weight.copy_(res.weight);
        t.lin->set_mask(res.mask);
      }
      lr.seconds = seconds_since(t0);
      rep_.layers.push_back(lr);
      ++done_;
    }
  }

  Progress prog_;
  InstallFn install_;
  PruneReport rep_;
  int64_t done_ = 0;
};

// OWL's measuring pass on the dense model: the outlier ratio of each block's re-allocatable
// targets, per tower (docs/method.md "Allocation").
class OutlierMeter final : public CalibrationWalk {
 public:
  using CalibrationWalk::CalibrationWalk;
  // tower -> (block -> (outlier ratio in %, weights))
  const std::map<std::string, std::map<int64_t, std::pair<double, double>>>& blocks() const { return blocks_; }

 private:
  bool changes_stage() const override { return false; }
  bool needs_hessian() const override { return false; }

  void visit(std::vector<Target>& ts, const Collector& col) override {
    std::vector<OwlLayer> layers;
    double weights = 0;
    for (size_t i = 0; i < ts.size(); ++i) {
      if (!ts[i].allocated()) continue;
      const auto& st = col.stats(i);
      RESSA_CHECK(st && st->nsamples() > 0, "[prune_model] layer ", ts[i].name, " received no calibration inputs");
      layers.push_back({ts[i].lin->weight.detach().to(torch::kFloat32), st->col_norm_sq()});
      weights += static_cast<double>(ts[i].lin->weight.numel());
    }
    if (layers.empty()) return;
    blocks_[ts.front().tower][ts.front().block] = {owl_outlier_ratio(layers, o_.owl.threshold), weights};
  }

  std::map<std::string, std::map<int64_t, std::pair<double, double>>> blocks_;
};

// OWL: measures each block's outliers on the dense model, then shifts the ratio of every
// re-allocatable target by its block's shift (per tower; the tower's size-weighted mean stays).
void allocate_owl(model::Llava& net, std::vector<Target>& plan, const train::VqaSet& calib, const io::Tokenizer& tok,
                  const PruneModelOptions& o, const torch::Device& device, const ProgressSink& progress) {
  if (progress) progress("OWL: measuring the outlier ratio of each block on the dense model", false);
  OutlierMeter meter(net, plan, o);
  meter.run(calib, tok, device);
  for (const auto& [tower, blocks] : meter.blocks()) {
    std::vector<double> ratio, size;
    std::map<int64_t, size_t> k_of;
    for (const auto& [b, rs] : blocks) k_of[b] = ratio.size(), ratio.push_back(rs.first), size.push_back(rs.second);
    const auto shift = owl_block_shifts(ratio, size, o.owl.lambda);
    for (auto& t : plan) {
      if (!t.allocated() || t.tower != tower) continue;
      const double s = t.pattern.ratio + shift.at(k_of.at(t.block));
      RESSA_CHECK_ARG(s >= 0 && s < 1, "[prune] OWL gives ", t.name, " sparsity ", s, " (", t.pattern.ratio,
                      " shifted by its block's ", shift.at(k_of.at(t.block)), "), outside [0, 1); lower --owl-lambda (",
                      o.owl.lambda, ") or the sparsity");
      t.pattern = SparsityPattern::unstructured(s);
    }
  }
}

}  // namespace

PruneReport prune_model(model::Llava& net, const train::VqaSet& calib, const io::Tokenizer& tok,
                        const PruneModelOptions& o, const torch::Device& device, const ProgressSink& progress,
                        const InstallFn& install) {
  o.validate();
  RESSA_CHECK_ARG(calib.size() > 0, "[prune_model] the calibration set is empty");
  const auto t_start = std::chrono::steady_clock::now();
  auto plan = plan_targets(net, o);  // every check before the model changes
  torch::NoGradGuard ng;
  net->eval();
  if (o.allocation == Allocation::Owl) allocate_owl(net, plan, calib, tok, o, device, progress);
  Pruner pruner(net, std::move(plan), o, progress, install);
  pruner.run(calib, tok, device);
  auto rep = pruner.finish();
  rep.seconds = seconds_since(t_start);
  return rep;
}

int64_t memory_estimate(model::Llava& net, const PruneModelOptions& o, int64_t calib_sequences, int64_t max_tokens) {
  const auto& c = net->config;
  const double runtime = 0x1p29;  // libtorch, OpenBLAS and allocator overhead, measured idle: ~0.4-0.5 GB
  // Everything but the Linear weights is an fp32 copy (embeddings, norms, biases, positions).
  double others = 0;
  for (const auto& p : net->parameters()) others += static_cast<double>(p.numel());
  auto lins = net->vision_block_linears();
  for (auto& l : net->language_block_linears()) lins.push_back(l);
  for (auto& [name, lin] : net->linears()) others -= static_cast<double>(lin->weight.numel());
  if (o.prune_projector)
    for (const char* n : {"multi_modal_projector.linear_1", "multi_modal_projector.linear_2"})
      for (auto& [name, lin] : net->linears())
        if (name == n) lins.emplace_back(name, lin);
  if (o.prune_lm_head) lins.emplace_back("language_model.lm_head", net->language_model->lm_head);
  const double b = static_cast<double>(std::min(o.calib_batch, std::max<int64_t>(1, calib_sequences)));
  const double mlp = 3.0 * 4.0 * b * static_cast<double>(max_tokens) *
                     static_cast<double>(std::max(c.text.intermediate_size, c.vision.intermediate_size));
  const bool hessian = o.method == Method::SparseGPT || (o.method == Method::DSnoT && o.method_opts.dsnot_base == Method::SparseGPT);
  const double hes = o.method_opts.hessian_dtype == torch::kFloat64 ? 8.0 : 4.0;
  double prune = 0, widest = 0;
  std::map<std::string, double> block_bytes, block_hessians;
  for (auto& [name, lin] : lins) {
    const auto& w = lin->weight;
    const double din = static_cast<double>(w.size(1));
    prune = std::max(prune, 16.0 * static_cast<double>(w.numel()));
    widest = std::max(widest, din);
    // The block: the name up to its index ("...layers.7.").
    const auto at = name.find("layers.");
    const std::string block = at == std::string::npos ? name : name.substr(0, name.find('.', at + 7));
    block_bytes[block] += static_cast<double>(w.nbytes());
    // k/v share q's input and up shares gate's: one Hessian each.
    const bool shares = name.find("k_proj") != std::string::npos || name.find("v_proj") != std::string::npos ||
                        name.find("up_proj") != std::string::npos;
    if (!shares) block_hessians[block] += hes * din * din;
  }
  double weights = 0, hessians = 0;
  for (auto& [k, v] : block_bytes) weights = std::max(weights, v);
  for (auto& [k, v] : block_hessians) hessians = std::max(hessians, v);
  if (hessian) prune += hessians + 2.0 * hes * widest * widest;  // + damped copy and inverse factor
  return static_cast<int64_t>(runtime + 4.0 * others + mlp + prune + 5.0 * weights);
}

PruneReport prune_model_dir(const std::string& dense_dir, const data::DataSource& data, const std::string& out_dir,
                            const PruneModelOptions& o, const torch::Device& device, const ProgressSink& progress) {
  o.validate();
  RESSA_CHECK_ARG(!out_dir.empty(), "[prune] --out must not be empty");
  RESSA_CHECK_ARG(fs::is_directory(dense_dir), "[prune] --model ", dense_dir, ": model directory not found");
  data.validate();
  RESSA_CHECK_ARG(fs::weakly_canonical(dense_dir) != fs::weakly_canonical(out_dir), "[prune] --out ", out_dir,
                  " is the dense model directory --model ", dense_dir, "; choose another output directory");
  check_output_path("--out", out_dir, OutputKind::Directory, {{"--model", dense_dir}, {"--data", data.path}});
  // Streamed (docs/architecture.md "Memory when pruning"): on CPU the Linear weights are read in
  // place from the mapped checkpoint, block by block as calibration reaches them, and each pruned
  // weight and mask goes to a scratch file on disk; every stage drops the file pages it read, so
  // the process holds one block's weights, not the model's. Elsewhere they are copies in the
  // stored dtype (an fp16 / bf16 model's Linear weights stay 16-bit), pruned in place.
  model::LoadOptions lo;
  lo.map_weights = true;
  lo.stored_dtype = true;
  auto lm = model::load_model(dense_dir, device, lo);
  plan_targets(lm.model, o);  // checked before the calibration set is read
  const auto proc = data::Processor::load_dir(dense_dir, lm.model->config);
  const io::Tokenizer& tok = proc.tokenizer();
  if (progress) progress("loading calibration examples from " + data.path, false);
  auto set = load_calibration_set(data, proc, lm.model->config, o.calib_samples, o.seed);
  auto where = fs::absolute(out_dir).lexically_normal();
  if (!where.has_filename()) where = where.parent_path();  // "out/"
  PruneModelOptions run = o;
  run.scratch_dir = where.parent_path().string();
  if (o.max_memory > 0) {
    int64_t longest = 0;
    for (const auto& s : set.sequence) longest = std::max<int64_t>(longest, static_cast<int64_t>(s.size()));
    const int64_t need = memory_estimate(lm.model, o, set.size(), longest);
    const auto gib = [](int64_t v) {
      char s[32];
      std::snprintf(s, sizeof s, "%.2f GiB", static_cast<double>(v) / 0x1p30);
      return std::string(s);
    };
    RESSA_CHECK_ARG(need < o.max_memory, "[prune] --max-memory ", gib(o.max_memory), " is below the ~", gib(need),
                    " this model needs besides its calibration activations (one block's weights, the embeddings, one "
                    "calibration batch; docs/architecture.md \"Memory when pruning\"): raise it, or lower --calib-batch");
    run.activation_budget = o.max_memory - need;
    if (progress)
      progress("memory: ~" + gib(need) + " working set; calibration activations up to " + gib(run.activation_budget) +
                   " in memory, past that in a scratch file in " + run.scratch_dir, true);
  }
  InstallFn install;
  if (device.is_cpu()) {
    auto spill = std::make_shared<io::SpillFile>(run.scratch_dir);
    install = [spill](model::LinearImpl& lin, const torch::Tensor& weight, const torch::Tensor& mask) {
      // Rounded to the weight's dtype as copy_ into it would. The mask is spilled as bool, the
      // dtype a layer keeps (a uint8 view would be converted into a new bool tensor in memory:
      // 0.2 GB per 7B decoder block).
      lin.weight.set_data(spilled(spill, weight.to(lin.weight.scalar_type())));
      lin.set_mask(spilled(spill, mask.to(torch::kBool)));
    };
  }
  auto rep = prune_model(lm.model, set, tok, run, device, progress, install);

  const std::string pattern = combined_pattern(o.vision, o.language);
  nlohmann::json rec = {{"method", to_string(o.method)},
                        {"pattern", pattern},
                        {"vision_pattern", o.vision.to_string()},
                        {"language_pattern", o.language.to_string()},
                        {"vision_sparsity", rep.sparsity.vision},
                        {"language_sparsity", rep.sparsity.language},
                        {"overall_sparsity", rep.sparsity.overall},
                        {"granularity", to_string(o.method_opts.granularity)},
                        {"calib", to_string(o.calib)},
                        {"calib_samples", rep.calib_samples},
                        {"seed", o.seed},
                        {"prune_projector", o.prune_projector},
                        {"prune_lm_head", o.prune_lm_head},
                        {"dense_model",
                         {{"path", fs::absolute(dense_dir).lexically_normal().string()},
                          {"fingerprint", model::model_fingerprint(dense_dir)}}},
                        {"ressa_version", version_string()}};
  if (o.method == Method::DSnoT) rec["dsnot_base"] = to_string(o.method_opts.dsnot_base);
  if (o.method == Method::SparseGPT || (o.method == Method::DSnoT && o.method_opts.dsnot_base == Method::SparseGPT))
    rec["hessian_dtype"] = hessian_dtype_name(o.method_opts.hessian_dtype);
  rec["allocation"] = to_string(o.allocation);
  if (o.allocation == Allocation::Owl) rec["owl"] = {{"threshold", o.owl.threshold}, {"lambda", o.owl.lambda}};
  auto texts = [](const std::vector<NamePattern>& ps) {
    std::vector<std::string> out;
    for (const auto& p : ps) out.push_back(p.text());
    return out;
  };
  rec["targets"] = texts(o.rules.targets);
  rec["ignore"] = texts(o.rules.ignore);
  rec["overrides"] = nlohmann::json::array();
  for (const auto& ov : o.rules.overrides) rec["overrides"].push_back(ov.to_string());
  rec["layers"] = nlohmann::json::array();
  for (const auto& l : rep.layers)
    rec["layers"].push_back({{"name", l.name}, {"tower", l.tower}, {"pattern", l.pattern}, {"sparsity", l.sparsity}});
  // The recipe these options resolve to: `ressa prune --recipe <out>/recipe.yaml` replays the pruning.
  const std::string recipe = io::to_yaml(recipe_of(o));
  rec["recipe"] = recipe;

  write_output_dir(out_dir, [&](const std::string& staging) {
    model::save_model(staging, lm.model,
                      {{"ressa.command", "prune"}, {"ressa.method", to_string(o.method)}, {"ressa.pattern", pattern}});
    io::copy_model_files(dense_dir, staging);
    write_file_atomic((fs::path(staging) / "prune.json").string(), rec.dump(2) + "\n");
    write_file_atomic((fs::path(staging) / "recipe.yaml").string(), recipe);
  });
  return rep;
}

}  // namespace ressa::prune
