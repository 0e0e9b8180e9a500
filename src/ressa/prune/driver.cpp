// Whole-model pruning: calibration streams through the vision blocks, projector and language
// blocks; per-block input capture through each Linear's input hook; prune_matrix per Linear; output dir.
#include "ressa/prune/driver.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <unordered_map>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/core/version.h"
#include "ressa/data/dataset.h"
#include "ressa/data/image.h"
#include "ressa/io/model_files.h"
#include "ressa/model/checkpoint.h"
#include "ressa/prune/mask.h"

namespace fs = std::filesystem;

namespace ressa::prune {

using Calib = PruneModelOptions::Calib;

void PruneModelOptions::validate() const {
  method_opts.validate();
  RESSA_CHECK_ARG(calib_samples > 0, "[PruneModelOptions] calib_samples must be > 0, got ", calib_samples);
  RESSA_CHECK_ARG(calib_batch > 0, "[PruneModelOptions] calib_batch must be > 0, got ", calib_batch);
  for (auto [p, tower] : {std::pair{&vision, "vision"}, std::pair{&language, "language"}}) {
    if (p->is_nm())
      RESSA_CHECK_ARG(p->n > 0 && p->m > p->n, "[PruneModelOptions] ", tower, " pattern needs 0 < N < M, got ", p->n,
                      ":", p->m);
    else
      RESSA_CHECK_ARG(p->ratio >= 0 && p->ratio < 1, "[PruneModelOptions] ", tower,
                      " sparsity must be in [0, 1), got ", p->ratio);
  }
}

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

train::VqaSet load_calibration_set(const std::string& dir, const io::Tokenizer& tok, const io::LlavaConfig& cfg,
                                   int64_t k, uint64_t seed) {
  const std::string where = dir + "/train.jsonl";
  auto all = data::read_split(dir, "train");
  RESSA_CHECK(!all.empty(), "[load_calibration_set] ", where, ": no examples");
  train::VqaSet set;
  std::unordered_map<std::string, int64_t> image_row;
  std::vector<std::string> files;
  auto encode = [&](const data::VqaExample& ex, const std::string& text) {
    auto ids = tok.encode(text);
    for (auto id : ids)
      RESSA_CHECK(id != tok.unk_id(), "[load_calibration_set] ", where, ": example '", ex.id, "' (\"", text,
                  "\") uses a word that the model's tokenizer.json lacks");
    return ids;
  };
  for (int64_t i : calib_indices(static_cast<int64_t>(all.size()), k, seed)) {
    const auto& ex = all[i];
    auto [it, fresh] = image_row.emplace(ex.image, static_cast<int64_t>(files.size()));
    if (fresh) files.push_back(ex.image);
    set.image_of.push_back(it->second);
    std::vector<int64_t> p{tok.bos_id()};
    p.insert(p.end(), cfg.image_tokens(), cfg.image_token_index);
    auto q = encode(ex, ex.question);
    p.insert(p.end(), q.begin(), q.end());
    auto a = encode(ex, ex.answer);
    RESSA_CHECK(!a.empty(), "[load_calibration_set] ", where, ": example '", ex.id, "' has an empty answer");
    a.push_back(tok.eos_id());
    RESSA_CHECK(static_cast<int64_t>(p.size() + a.size()) <= cfg.text.max_position_embeddings,
                "[load_calibration_set] ", where, ": example '", ex.id, "' is ", p.size() + a.size(),
                " tokens, longer than max_position_embeddings ", cfg.text.max_position_embeddings);
    set.prompt.push_back(std::move(p));
    set.answer.push_back(std::move(a));
    set.examples.push_back(ex);
  }
  const int64_t S = cfg.vision.image_size;
  set.images = torch::empty({static_cast<int64_t>(files.size()), 3, S, S}, torch::kUInt8);
  for (size_t i = 0; i < files.size(); ++i) {
    data::Image img = data::load_image(dir + "/" + files[i]);
    if (img.width != S || img.height != S) img = data::resize_bilinear(img, static_cast<int>(S), static_cast<int>(S));
    set.images[static_cast<int64_t>(i)].copy_(torch::from_blob(img.rgb.data(), {S, S, 3}, torch::kUInt8).permute({2, 0, 1}));
  }
  return set;
}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

struct Target {
  std::string name, tower;
  model::Linear lin;
};

// Captures the inputs of a set of Linears through their input hooks while it lives, and keeps
// one LayerStats (with XᵀX) per distinct input tensor: layers that read the same tensor in a
// forward pass (q/k/v, gate/up) share statistics. The inputs seen in the current batch are held
// until next_batch(), so a freed tensor's address can never be mistaken for a shared input.
class Collector {
 public:
  explicit Collector(std::vector<Target>& targets) : targets_(targets), stats_(targets.size()) {
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
      if (seen_[j].is_same(x) && (!stats_[i] || stats_[i] == seen_stats_[j])) {
        stats_[i] = seen_stats_[j];
        return;
      }
    }
    if (!stats_[i]) stats_[i] = std::make_shared<LayerStats>(x.size(-1), /*need_hessian=*/true);
    auto rows = x.reshape({-1, x.size(-1)});
    if (rows_.defined()) rows = rows.index({rows_});
    stats_[i]->add_batch(rows);
    seen_.push_back(x);
    seen_stats_.push_back(stats_[i]);
  }
  const std::shared_ptr<LayerStats>& stats(size_t i) const { return stats_[i]; }

 private:
  std::vector<Target>& targets_;
  std::vector<std::shared_ptr<LayerStats>> stats_;
  std::vector<torch::Tensor> seen_;
  std::vector<std::shared_ptr<LayerStats>> seen_stats_;
  torch::Tensor rows_;
};

std::vector<Target> block_targets(const std::vector<std::pair<std::string, model::Linear>>& all,
                                  const std::string& prefix, const std::string& tower) {
  std::vector<Target> out;
  for (const auto& [name, lin] : all)
    if (name.rfind(prefix, 0) == 0) out.push_back({name, tower, lin});
  return out;
}

// The projector and lm_head targets the options switch on (pruned with the language pattern).
std::pair<std::vector<Target>, std::vector<Target>> extra_targets(model::Llava& net, const PruneModelOptions& o) {
  std::vector<Target> proj, head;
  if (o.prune_projector && !o.language.is_dense())
    proj = {{"multi_modal_projector.linear_1", "projector", net->multi_modal_projector->linear_1},
            {"multi_modal_projector.linear_2", "projector", net->multi_modal_projector->linear_2}};
  RESSA_CHECK_ARG(!o.prune_lm_head || !net->language_model->tied,
                  "[prune] --prune-lm-head: lm_head is tied to embed_tokens (text_config.tie_word_embeddings)");
  if (o.prune_lm_head && !o.language.is_dense())
    head = {{"language_model.lm_head", "lm_head", net->language_model->lm_head}};
  return {proj, head};
}

// Checks that every Linear the options target can take its pattern (N:M: M divides d_in);
// returns how many Linears will be pruned.
int64_t check_targets(model::Llava& net, const PruneModelOptions& o) {
  int64_t total = 0;
  auto check = [&](const std::string& name, const model::Linear& lin, const SparsityPattern& p) {
    if (p.is_dense()) return;
    ++total;
    RESSA_CHECK_ARG(!p.is_nm() || lin->in_features() % p.m == 0, "[prune_model] pattern ", p.to_string(),
                    " needs d_in divisible by ", p.m, ", but ", name, " has weight ", lin->weight.sizes());
  };
  for (auto& [name, lin] : net->vision_block_linears()) check(name, lin, o.vision);
  for (auto& [name, lin] : net->language_block_linears()) check(name, lin, o.language);
  auto [proj, head] = extra_targets(net, o);
  for (auto* ts : {&proj, &head})
    for (auto& t : *ts) check(t.name, t.lin, o.language);
  return total;
}

// One pruning pass over a model. The calibration batches stream through the stages in the
// model's order (vision blocks up to the selected feature layer, projector, language blocks,
// lm_head); in each stage a first pass collects the statistics of its targets' inputs, then the
// targets are pruned. The stage's outputs, the next stage's inputs, are those of the dense stage
// (Dense calibration) or of the just-pruned one (Sequential).
class ModelPruner {
 public:
  ModelPruner(model::Llava& net, const PruneModelOptions& o, int64_t total, const ProgressSink& progress)
      : net_(net), o_(o), prog_("prune", total, progress, 0.0) {}

  // Calibration batches (right padded) and the first vision hidden state of each.
  void embed_calibration(const train::VqaSet& calib, const io::Tokenizer& tok, const torch::Device& device) {
    const auto idx = calib_indices(calib.size(), o_.calib_samples, o_.seed);
    rep_.calib_samples = static_cast<int64_t>(idx.size());
    std::vector<std::vector<int64_t>> batches;
    for (size_t s = 0; s < idx.size(); s += o_.calib_batch)
      batches.emplace_back(idx.begin() + s, idx.begin() + std::min(idx.size(), s + o_.calib_batch));
    nb_ = static_cast<int64_t>(batches.size());
    hid_.resize(nb_), ids_.resize(nb_), attn_.resize(nb_);
    for (int64_t b = 0; b < nb_; ++b) {
      auto bt = train::make_train_batch(calib, batches[b], net_->config, tok, device);
      hid_[b] = net_->vision_tower->vision_model->embed(bt.pixels);
      ids_[b] = bt.ids;
      attn_[b] = bt.attn;
    }
  }

  // The vision blocks up to the hidden state image_features() selects (blocks past it never
  // reach the output); keeps that state as the projector's input.
  void vision_blocks() {
    const auto& cfg = net_->config;
    auto& vm = net_->vision_tower->vision_model;
    auto all = net_->vision_block_linears();
    const int64_t L = static_cast<int64_t>(vm->blocks.size());
    const int64_t feat_layer = cfg.vision_feature_layer < 0 ? L + 1 + cfg.vision_feature_layer : cfg.vision_feature_layer;
    const bool drop_cls = cfg.vision_feature_select_strategy == "default";
    auto take_features = [&] {
      feat_.resize(nb_);
      for (int64_t b = 0; b < nb_; ++b) feat_[b] = drop_cls ? hid_[b].slice(1, 1) : hid_[b];
    };
    if (feat_layer == 0) take_features();
    for (int64_t i = 0; i < feat_layer; ++i) {
      auto blk = vm->blocks[i];
      hid_ = run_stage(block_targets(all, "vision_tower.vision_model.encoder.layers." + std::to_string(i) + ".", "vision"),
                       o_.vision, [&](int64_t b) { return blk(hid_[b]); }, nullptr);
      if (i + 1 == feat_layer) take_features();
    }
  }

  // The projector, then the language model's input embeddings (hid_ becomes [B, T, D]).
  void projector() {
    auto proj = run_stage(extra_targets(net_, o_).first, o_.language,
                          [&](int64_t b) { return net_->multi_modal_projector(feat_[b]); }, nullptr);
    feat_.clear();
    for (int64_t b = 0; b < nb_; ++b) hid_[b] = net_->embed(ids_[b], proj[b]);
  }

  // The decoder blocks; statistics only from real (non-padding) tokens.
  void language_blocks() {
    // RoPE tables and the additive causal+padding bias of each batch, as LlavaImpl::decode makes
    // them: the same for every block, so made once.
    std::vector<model::DecoderInputs> dec(nb_);
    for (int64_t b = 0; b < nb_; ++b)
      dec[b] = model::decoder_inputs(attn_[b], attn_[b].size(1), net_->config.text, hid_[b].scalar_type());
    auto all = net_->language_block_linears();
    auto& lm = net_->language_model->model;
    for (size_t i = 0; i < lm->blocks.size(); ++i) {
      auto blk = lm->blocks[i];
      hid_ = run_stage(block_targets(all, "language_model.model.layers." + std::to_string(i) + ".", "language"),
                       o_.language, [&](int64_t b) { return blk(hid_[b], dec[b].cos, dec[b].sin, dec[b].bias); },
                       real_rows());
    }
  }

  // lm_head: its input is fed to the hook directly (the [B, T, vocab] logits are not needed).
  void lm_head() {
    auto& head = net_->language_model->lm_head;
    auto& lm = net_->language_model->model;
    run_stage(extra_targets(net_, o_).second, o_.language,
              [&](int64_t b) {
                if (head->has_input_hook()) head->feed_input_hook(lm->norm(hid_[b]));
                return torch::Tensor();
              },
              real_rows());
  }

  PruneReport finish() {
    prog_.finish();
    rep_.sparsity = eval::sparsity_report(net_);
    return std::move(rep_);
  }

 private:
  using BatchFn = std::function<torch::Tensor(int64_t)>;

  BatchFn real_rows() const {
    return [this](int64_t b) { return attn_[b].reshape({-1}).to(torch::kBool); };
  }

  // One stage: fwd(b) maps batch b through it; rows(b) selects the token rows that count for
  // the statistics (empty function = all). Returns the stage's outputs.
  std::vector<torch::Tensor> run_stage(std::vector<Target> ts, const SparsityPattern& p, const BatchFn& fwd,
                                       const BatchFn& rows) {
    const bool sequential = o_.calib == Calib::Sequential;
    std::vector<torch::Tensor> out(nb_);
    if (ts.empty() || p.is_dense()) {
      for (int64_t b = 0; b < nb_; ++b) out[b] = fwd(b);
      return out;
    }
    {
      Collector col(ts);
      for (int64_t b = 0; b < nb_; ++b) {
        col.next_batch(rows ? rows(b) : torch::Tensor());
        auto y = fwd(b);
        if (!sequential) out[b] = y;
      }
      col.next_batch();
      prune_targets(ts, col, p);
    }
    if (sequential)
      for (int64_t b = 0; b < nb_; ++b) out[b] = fwd(b);
    return out;
  }

  // Prunes the targets from their collected statistics and installs weight and mask.
  void prune_targets(std::vector<Target>& ts, const Collector& col, const SparsityPattern& p) {
    for (size_t i = 0; i < ts.size(); ++i) {
      auto& t = ts[i];
      prog_.update(done_, t.name);
      const auto& st = col.stats(i);
      RESSA_CHECK(st && st->nsamples() > 0, "[prune_model] layer ", t.name, " received no calibration inputs");
      const auto t0 = std::chrono::steady_clock::now();
      auto w = t.lin->weight.detach();
      auto res = prune_matrix(w, *st, o_.method, p, o_.method_opts);
      LayerReport lr;
      lr.name = t.name;
      lr.tower = t.tower;
      lr.recon_error = recon_error_gram(w, res.weight, st->hessian());
      lr.sparsity = sparsity(res.weight);
      lr.calib_rows = st->nsamples();
      lr.input_sq_mean = st->col_norm_sq().sum().item<double>() / (static_cast<double>(st->nsamples()) * st->d_in());
      t.lin->weight.copy_(res.weight);
      t.lin->set_mask(res.mask);
      lr.seconds = seconds_since(t0);
      rep_.layers.push_back(lr);
      ++done_;
    }
  }

  model::Llava& net_;
  const PruneModelOptions& o_;
  Progress prog_;
  PruneReport rep_;
  int64_t done_ = 0;
  int64_t nb_ = 0;                                  // calibration batches
  std::vector<torch::Tensor> hid_, ids_, attn_;     // per batch; hid_: [B, 1+P, Dv], later [B, T, D]
  std::vector<torch::Tensor> feat_;                 // per batch: [B, image_tokens, Dv]
};

}  // namespace

PruneReport prune_model(model::Llava& net, const train::VqaSet& calib, const io::Tokenizer& tok,
                        const PruneModelOptions& o, const torch::Device& device, const ProgressSink& progress) {
  o.validate();
  RESSA_CHECK_ARG(calib.size() > 0, "[prune_model] the calibration set is empty");
  const auto t_start = std::chrono::steady_clock::now();
  const int64_t total = check_targets(net, o);  // every check before the model changes
  torch::NoGradGuard ng;
  net->eval();
  ModelPruner pruner(net, o, total, progress);
  pruner.embed_calibration(calib, tok, device);
  pruner.vision_blocks();
  pruner.projector();
  pruner.language_blocks();
  pruner.lm_head();
  auto rep = pruner.finish();
  rep.seconds = seconds_since(t_start);
  return rep;
}

PruneReport prune_model_dir(const std::string& dense_dir, const std::string& data_dir, const std::string& out_dir,
                            const PruneModelOptions& o, const torch::Device& device, const ProgressSink& progress) {
  o.validate();
  RESSA_CHECK_ARG(!out_dir.empty(), "[prune] --out must not be empty");
  RESSA_CHECK_ARG(fs::is_directory(dense_dir), "[prune] --model ", dense_dir, ": model directory not found");
  RESSA_CHECK_ARG(fs::is_directory(data_dir), "[prune] --data ", data_dir, ": dataset directory not found");
  RESSA_CHECK_ARG(fs::weakly_canonical(dense_dir) != fs::weakly_canonical(out_dir), "[prune] --out ", out_dir,
                  " is the dense model directory --model ", dense_dir, "; choose another output directory");
  check_output_path("--out", out_dir, OutputKind::Directory, {{"--model", dense_dir}, {"--data", data_dir}});
  auto lm = model::load_model(dense_dir, device);
  check_targets(lm.model, o);
  auto tok = io::Tokenizer::load_dir(dense_dir);  // tokenizer.json + tokenizer_config.json
  if (progress) progress("loading calibration examples from " + data_dir, false);
  auto set = load_calibration_set(data_dir, tok, lm.model->config, o.calib_samples, o.seed);
  auto rep = prune_model(lm.model, set, tok, o, device, progress);

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

  write_output_dir(out_dir, [&](const std::string& staging) {
    model::save_model(staging, lm.model,
                      {{"ressa.command", "prune"}, {"ressa.method", to_string(o.method)}, {"ressa.pattern", pattern}});
    io::copy_model_files(dense_dir, staging);
    write_file_atomic((fs::path(staging) / "prune.json").string(), rec.dump(2) + "\n");
  });
  return rep;
}

}  // namespace ressa::prune
