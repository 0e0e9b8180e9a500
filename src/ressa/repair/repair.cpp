// `ressa repair` driver: validate, load student + dense teacher, train adapters with the repair
// objective on the shared loop, merge, verify sparsity, write the model directory.
#include "ressa/repair/repair.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/eval/vqa_eval.h"
#include "ressa/io/model_files.h"
#include "ressa/io/tokenizer.h"
#include "ressa/model/checkpoint.h"
#include "ressa/train/vqa_data.h"

namespace fs = std::filesystem;

namespace ressa::repair {

train::LoopOptions RepairOptions::default_loop() {
  train::LoopOptions l;
  l.steps = 600;
  l.batch = 32;
  l.lr = 2e-3;
  l.warmup = 20;
  l.min_lr_ratio = 0.1;
  l.weight_decay = 0.0;
  l.grad_clip = 1.0;
  l.checkpoint_every = 100;
  return l;
}

namespace {
std::string strip_slash(std::string s) {
  while (s.size() > 1 && s.back() == '/') s.pop_back();
  return s;
}
bool same_path(const std::string& a, const std::string& b) {
  return fs::weakly_canonical(fs::absolute(a)) == fs::weakly_canonical(fs::absolute(b));
}
nlohmann::json read_json(const std::string& path, const char* flag) {
  try {
    return nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("[repair] ", flag, " ", path, ": not valid JSON: ", e.what());  // a bad file: exit 1, not a usage error
  }
}
std::string ckpt_dir(const RepairOptions& o) { return strip_slash(o.out_dir) + ".ckpt"; }
// (n, m) of an "N:M" pattern string, else (0, 0).
std::pair<int, int> parse_nm(const std::string& p) {
  const auto c = p.find(':');
  if (c == std::string::npos) return {0, 0};
  try {
    return {std::stoi(p.substr(0, c)), std::stoi(p.substr(c + 1))};
  } catch (const std::exception&) {
    return {0, 0};
  }
}
}  // namespace

void RepairOptions::validate() const {
  RESSA_CHECK_ARG(!dense_dir.empty() && !pruned_dir.empty() && !data_dir.empty() && !out_dir.empty(),
                  "[repair] --dense, --pruned, --data and --out are required");
  adapter.validate();
  RESSA_CHECK_ARG(kd_weight >= 0 && kd_weight <= 1, "[repair] --kd-weight must be in [0,1], got ", kd_weight);
  RESSA_CHECK_ARG(temperature > 0 && std::isfinite(temperature), "[repair] --temperature must be > 0, got ", temperature);
  RESSA_CHECK_ARG(val_limit >= 0, "[repair] --val-limit must be >= 0, got ", val_limit);
  RESSA_CHECK_ARG(interrupt_after >= 0, "[repair] interrupt_after must be >= 0, got ", interrupt_after);
  auto lo = loop;
  lo.checkpoint_dir = ckpt_dir(*this);
  lo.validate();
  RESSA_CHECK_ARG(fs::is_directory(dense_dir), "[repair] --dense ", dense_dir, ": directory not found");
  RESSA_CHECK_ARG(fs::is_directory(pruned_dir), "[repair] --pruned ", pruned_dir, ": directory not found");
  data::DataSource(data_dir, image_folder).validate();
  for (const char* f : {"prune.json", "masks.safetensors", "tokenizer.json"})
    RESSA_CHECK_ARG(fs::exists(fs::path(pruned_dir) / f), "[repair] --pruned ", pruned_dir, " has no ", f,
                    " (expected a model directory written by ressa prune)");
  RESSA_CHECK_ARG(!same_path(out_dir, pruned_dir) && !same_path(out_dir, dense_dir),
                  "[repair] --out ", out_dir, " must differ from --pruned and --dense");
  check_output_path("--out", out_dir, OutputKind::Directory,
                    {{"--dense", dense_dir}, {"--pruned", pruned_dir}, {"--data", data_dir}});
  RESSA_CHECK_ARG(!loop.resume || fs::exists(fs::path(ckpt_dir(*this)) / "state.json"), "[repair] --resume: no checkpoint at ",
                  ckpt_dir(*this), " (nothing to resume; run without --resume)");
}

void check_provenance(const std::string& dense_dir, const std::string& pruned_dir) {
  const std::string path = (fs::path(pruned_dir) / "prune.json").string();
  auto rec = read_json(path, "--pruned");
  RESSA_CHECK(rec.is_object() && rec.contains("dense_model") && rec["dense_model"].is_object() &&
                      rec["dense_model"].contains("fingerprint") && rec["dense_model"]["fingerprint"].is_string(),
                  "[repair] ", path, ": missing dense_model.fingerprint (cannot tie --pruned to its dense model)");
  const std::string recorded = rec["dense_model"]["fingerprint"];
  const std::string actual = model::model_fingerprint(dense_dir);
  RESSA_CHECK_ARG(recorded == actual, "[repair] --pruned ", pruned_dir, " was pruned from a model with fingerprint ",
                  recorded, " (", rec["dense_model"].value("path", std::string("?")), "), but --dense ", dense_dir,
                  " has fingerprint ", actual, "; the teacher must be the dense model the pruned one came from");
}

RepairResult repair_model(const RepairOptions& o, const model::Runtime& rt, const ProgressSink& progress) {
  o.validate();
  check_provenance(o.dense_dir, o.pruned_dir);
  const std::string ckpt = ckpt_dir(o);
  std::error_code ec;
  const bool root = rt.is_root();  // with several processes only rank 0 evaluates and writes
  if (!o.loop.resume && root) fs::remove_all(ckpt, ec);  // a stale checkpoint of another run must not mix in
  auto say = [&](const std::string& s) {
    if (progress && root) progress(s, false);
  };

  say("loading " + o.pruned_dir);
  // The frozen weights of the low-rank adapters' layers stay in the checkpoint's dtype, read in
  // place from the mapped file (docs/architecture.md "Memory when repairing"); masked finetuning
  // trains the weights themselves, so it loads fp32 copies.
  model::LoadOptions load;
  load.map_weights = o.adapter.kind != model::AdapterKind::MaskedFt;
  auto lm = model::load_model(o.pruned_dir, rt.device, load);
  RESSA_CHECK_ARG(lm.has_masks, "[repair] --pruned ", o.pruned_dir, ": no masks loaded");
  auto& net = lm.model;
  const auto& cfg = net->config;
  // The pruned model's processor (its tokenizer, chat template and image processor, copied from
  // the dense model): the prompts the model answers at eval and generate time.
  const auto proc = data::Processor::load_dir(o.pruned_dir, cfg);
  const io::Tokenizer& tok = proc.tokenizer();
  const data::DataSource source(o.data_dir, o.image_folder);
  auto train_set = train::load_vqa_set(source, "train", proc, cfg);
  train::VqaSet val_set;
  // A conversation file has no val split: repair trains on all of it and scores nothing.
  const int64_t val_limit = source.is_conversation_file() ? 0 : o.val_limit;
  if (val_limit > 0) val_set = train::load_vqa_set(source, "val", proc, cfg, val_limit);

  RepairResult res;
  res.teacher = attach_dense_teacher(net, o.dense_dir, o.pruned_dir, rt.device);
  torch::manual_seed(o.seed);
  auto adapted = attach_adapters(net, o.adapter);
  RESSA_CHECK_ARG(!adapted.empty(), "[repair] --targets ", to_string(o.adapter.targets), " selects no Linear of ",
                  o.pruned_dir, " (no pruned layer in those towers)");
  auto params = trainable_parameters(adapted);
  res.adapted_layers = static_cast<int64_t>(adapted.size());
  for (auto& p : params) res.trainable_params += p.numel();

  auto evaluate = [&](bool teacher) {
    eval::EvalOptions eo;
    eo.eos_ids = proc.eos_ids();
    net->set_teacher_mode(teacher);
    auto r = eval::evaluate(net, val_set, tok, eo, rt.device);
    net->set_teacher_mode(false);
    res.val_n = r.n;
    return r.accuracy;
  };
  if (val_limit > 0 && root) {
    say("evaluating the dense teacher and the pruned student on " + std::to_string(val_set.size()) + " val examples");
    res.val_dense = evaluate(true);
    res.val_before = evaluate(false);
  }
  if (rt.group && val_limit > 0) rt.group->root_done("evaluation before repair");

  train::LoopOptions lo = o.loop;
  lo.seed = o.seed;
  lo.checkpoint_dir = ckpt;
  lo.group = rt.group;
  int64_t calls = 0;
  train::LoopHooks hooks;
  hooks.progress = progress;
  hooks.loss = [&](const std::vector<int64_t>& idx) {
    if (o.interrupt_after > 0 && calls++ == o.interrupt_after)
      fail("[repair] interrupted after ", o.interrupt_after, " steps (interrupt_after)");
    net->train();
    auto b = train::make_train_batch(train_set, idx, tok, rt.device);
    // The objective averages over answer positions: weight = their count (loss_mask is 0/1).
    return train::StepLoss(repair_loss(net, b, o.kd_weight, o.temperature).total, b.loss_mask.sum().item<double>());
  };
  net->set_checkpointing(o.checkpointing);
  res.loop = train::run_loop(params, train_set.size(), lo, hooks);
  net->set_checkpointing(false);
  if (!root) {  // rank 0 merges, evaluates and writes; the others wait for it (dist/group.h)
    rt.group->root_done("writing " + o.out_dir);
    return res;
  }

  say("merging " + std::to_string(adapted.size()) + " adapters");
  res.merge = merge_adapters(net, adapted, o.adapter.kind);
  nlohmann::json prune_rec = read_json((fs::path(o.pruned_dir) / "prune.json").string(), "--pruned");
  const auto [n, m] = parse_nm(prune_rec.value("pattern", std::string()));
  res.sparsity = eval::sparsity_report(net, n, m);
  RESSA_CHECK(o.adapter.kind == model::AdapterKind::Lora || !res.sparsity.nm_checked || res.sparsity.nm_valid,
              "[repair] merged model violates the ", n, ":", m, " pattern of ", o.pruned_dir, "; not written");
  if (val_limit > 0) res.val_after = evaluate(false);

  nlohmann::json rep = {
      {"adapter", model::to_string(o.adapter.kind)},
      {"kd_weight", o.kd_weight},
      {"temperature", o.temperature},
      {"targets", to_string(o.adapter.targets)},
      {"ranks", {{"vision", o.adapter.rank_vision}, {"language", o.adapter.rank_language}, {"projector", o.adapter.rank_projector}}},
      {"alpha", o.adapter.alpha},
      {"steps", lo.steps}, {"batch", lo.batch}, {"micro_batch", lo.micro_batch}, {"checkpointing", o.checkpointing}, {"lr", lo.lr}, {"warmup", lo.warmup},
      {"min_lr_ratio", lo.min_lr_ratio}, {"weight_decay", lo.weight_decay}, {"seed", o.seed},
      {"dense_model", {{"path", o.dense_dir}, {"fingerprint", prune_rec["dense_model"]["fingerprint"]}}},
      {"pruned_model", {{"path", o.pruned_dir}, {"fingerprint", model::model_fingerprint(o.pruned_dir)}}},
      {"final_loss", res.loop.final_loss},
      {"adapted_layers", res.adapted_layers},
      {"trainable_params", res.trainable_params},
      {"pruned_positions", res.merge.pruned_positions},
      {"filled_pruned_positions", res.merge.filled_pruned_positions},
      {"val_accuracy", {{"dense", res.val_dense}, {"before", res.val_before}, {"after", res.val_after}, {"n", res.val_n}}},
  };
  write_output_dir(o.out_dir, [&](const std::string& staging) {
    // save_model refuses NaN/Inf weights: then nothing is left at --out.
    model::save_model(staging, net, {{"ressa.command", "repair"}, {"ressa.adapter", model::to_string(o.adapter.kind)}});
    io::copy_model_files(o.pruned_dir, staging);
    fs::copy_file(fs::path(o.pruned_dir) / "prune.json", fs::path(staging) / "prune.json");
    write_file_atomic((fs::path(staging) / "repair.json").string(), rep.dump(2) + "\n");
  });
  fs::remove_all(ckpt, ec);
  if (rt.group) rt.group->root_done("writing " + o.out_dir);
  return res;
}

}  // namespace ressa::repair
