// `ressa train`: tokenizer from the data, model from a preset/config, AdamW loop, model directory.
#include "ressa/train/dense.h"

#include <cmath>
#include <filesystem>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/eval/vqa_eval.h"
#include "ressa/model/checkpoint.h"
#include "ressa/train/vqa_data.h"

namespace fs = std::filesystem;

namespace ressa::train {

TrainRecipe preset_recipe(const std::string& preset) {
  TrainRecipe r;
  if (preset == "tiny") {
    r.epochs = 2.0;  // seconds; tests
  } else {
    // small (and base): the small model left the question-only plateau only at lr <= 5e-4 (higher
    // rates starved the vision tower of gradient) and learned faster per example at batch 16.
    r.steps = 6000;
    r.batch = 16;
    r.lr = 5e-4;
    r.warmup = 200;
  }
  return r;
}

DenseTrainResult train_dense(const DenseTrainOptions& o, const model::Runtime& rt, const ProgressSink& progress) {
  RESSA_CHECK_ARG(fs::is_directory(o.data_dir), "[train] --data ", o.data_dir, ": directory not found");
  check_output_path("--out", o.out_dir, OutputKind::Directory, {{"--data", o.data_dir}, {"--config", o.config_path}});
  {  // flags first, before the data is read (run_loop checks the final step count again)
    RESSA_CHECK_ARG(o.epochs >= 0 && std::isfinite(o.epochs), "[train] --epochs must be >= 0, got ", o.epochs);
    LoopOptions flags = o.loop;
    flags.checkpoint_dir = o.out_dir + ".ckpt";  // as run_loop will see it (--resume needs it)
    if (o.epochs > 0) flags.steps = 1;
    flags.validate();
  }
  auto tok = build_tokenizer(o.data_dir, {"train", "val", "test"});
  io::LlavaConfig cfg = o.config_path.empty() ? io::preset_config(o.preset) : io::load_config(o.config_path);
  cfg.text.vocab_size = tok.vocab_size();
  cfg.image_token_index = tok.image_id();
  cfg.validate("train config");
  if (progress) progress("loading " + o.data_dir, false);
  auto train_set = load_vqa_split(o.data_dir, "train", tok, cfg);
  auto val_set = load_vqa_split(o.data_dir, "val", tok, cfg, o.val_limit);

  torch::manual_seed(o.seed);
  model::Llava net(cfg);
  net->to(rt.device);
  net->set_checkpointing(o.checkpointing);
  std::vector<torch::Tensor> params;
  int64_t n_params = 0;
  for (auto& p : net->parameters()) {
    params.push_back(p);
    n_params += p.numel();
  }
  // Training units: sequences of one or (packed) several examples sharing an image.
  std::vector<std::vector<int64_t>> units;
  if (o.pack) {
    units = pack_by_image(train_set, cfg.text.max_position_embeddings);
  } else {
    for (int64_t i = 0; i < train_set.size(); ++i) units.push_back({i});
  }
  const int64_t n_units = static_cast<int64_t>(units.size());
  if (progress)
    progress("training on " + std::to_string(n_units) + " sequences (" + std::to_string(train_set.size()) +
                 " questions" + (o.pack ? ", packed by image)" : ")"),
             false);
  LoopOptions lo = o.loop;
  if (o.epochs > 0) lo.steps = std::max<int64_t>(1, static_cast<int64_t>(o.epochs * n_units / lo.batch));
  lo.seed = o.seed;
  lo.checkpoint_dir = o.out_dir + ".ckpt";
  lo.group = rt.group;

  LoopHooks hooks;
  hooks.progress = progress;
  int64_t current_step = 0;
  hooks.on_step = [&current_step](int64_t step) { current_step = step; };
  hooks.loss = [&](const std::vector<int64_t>& idx) {
    net->train();
    // Question order: a pure function of (seed, step, unit) -- resumable, and the same however
    // the batch is sharded over processes.
    const uint64_t order_seed = (o.seed + 1) * 0xD1B54A32D192ED03ull ^ static_cast<uint64_t>(current_step) * 0x100000001B3ull;
    auto b = make_packed_batch(train_set, units, idx, order_seed, tok, rt.device);
    return StepLoss(answer_cross_entropy(net->forward(b.pixels, b.ids, b.attn), b), b.loss_mask.sum().item<double>());
  };
  hooks.validate = [&]() {
    eval::EvalOptions eo;
    return eval::evaluate(net, val_set, tok, eo, rt.device).accuracy;
  };
  DenseTrainResult res;
  res.loop = run_loop(params, n_units, lo, hooks);
  if (res.loop.interrupted) return res;
  if (!rt.is_root()) {  // rank 0 writes the model; the others wait for it (dist/group.h)
    rt.group->root_done("writing " + o.out_dir);
    return res;
  }
  res.val_accuracy = res.loop.validation.empty() ? 0 : res.loop.validation.back().second;
  res.params = n_params;
  // Forward+backward ≈ 6 FLOP per parameter per token (attention scores excluded).
  double tokens = 0;  // per training sequence
  const double shared = static_cast<double>(train_set.image_prefix);
  for (const auto& u : units) {
    tokens += shared;
    for (auto i : u) tokens += static_cast<double>(train_set.sequence[i].size()) - shared;
  }
  tokens /= static_cast<double>(n_units);
  res.questions_per_s = res.loop.examples_per_s * static_cast<double>(train_set.size()) / static_cast<double>(n_units);
  res.gflop_per_s = 6.0 * n_params * tokens * res.loop.examples_per_s / 1e9;

  write_output_dir(o.out_dir, [&](const std::string& staging) {
    // save_model refuses NaN/Inf weights: then nothing is left at --out.
    model::save_model(staging, net, {{"ressa.command", "train"}, {"ressa.seed", std::to_string(o.seed)}});
    tok.save(staging + "/tokenizer.json");
  });
  std::error_code ec;
  fs::remove_all(lo.checkpoint_dir, ec);
  if (rt.group) rt.group->root_done("writing " + o.out_dir);
  return res;
}

}  // namespace ressa::train
