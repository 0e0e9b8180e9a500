// `ressa train`: dense training of a Llava model from scratch.
#include <iostream>

#include "common.h"
#include "ressa/io/config.h"
#include "ressa/train/dense.h"

namespace ressa::cli {

void register_train(CLI::App& app) {
  struct Flags {
    ComputeFlags c;
    train::DenseTrainOptions o;
  };
  auto f = std::make_shared<Flags>();
  // Defaults for the built-in presets, chosen by measurement (docs/benchmarks.md).
  f->o.epochs = 0;
  f->o.loop.steps = 0;
  auto* cmd = app.add_subcommand("train", "train a dense VLM from scratch on a VQA dataset");
  cmd->add_option("--data", f->o.data_dir, "dataset directory")->required();
  cmd->add_option("--out", f->o.out_dir, "model directory to write")->required();
  cmd->add_option("--preset", f->o.preset, "model preset")->check(CLI::IsMember(io::preset_names()));
  cmd->add_option("--config", f->o.config_path, "config.json to use instead of a preset")->check(CLI::ExistingFile);
  cmd->add_option("--seed", f->o.seed, "seed for initialisation and data order");
  cmd->add_option("--steps", f->o.loop.steps, "optimizer steps (default: the preset's recipe)");
  cmd->add_option("--epochs", f->o.epochs, "passes over the training split (overrides --steps)");
  cmd->add_option("--batch", f->o.loop.batch, "examples per step (default: the preset's recipe)")->check(CLI::PositiveNumber);
  cmd->add_option("--micro-batch", f->o.loop.micro_batch,
                  "run each step's batch in chunks of N examples, accumulating gradients (less memory; 0 = whole batch)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--checkpointing", f->o.checkpointing,
                "keep only each block's input and recompute the block in backward (less memory, about 1/3 more time)");
  cmd->add_option("--lr", f->o.loop.lr, "peak learning rate (default: the preset's recipe)");
  cmd->add_option("--warmup", f->o.loop.warmup, "warm-up steps (default: the preset's recipe)");
  cmd->add_option("--weight-decay", f->o.loop.weight_decay, "AdamW weight decay");
  cmd->add_option("--grad-clip", f->o.loop.grad_clip, "gradient clipping norm (0 = off)");
  cmd->add_option("--eval-every", f->o.loop.eval_every, "validate every N steps (0 = end only)");
  cmd->add_flag("!--no-pack", f->o.pack, "one question per sequence (default: the questions of an image share one sequence)");
  cmd->add_option("--limit", f->o.val_limit, "validation examples scored");
  cmd->add_option("--val-limit", f->o.val_limit)->group("");  // earlier name of --limit
  cmd->add_option("--checkpoint-every", f->o.loop.checkpoint_every, "write a resumable checkpoint every N steps");
  cmd->add_flag("--resume", f->o.loop.resume, "continue an interrupted run from <out>.ckpt");
  cmd->add_option("--stop-after", f->o.loop.stop_after, "testing aid: checkpoint and stop after step N as if killed")
      ->group("");
  add_compute_flags(cmd, f->c, true);
  add_dist_flags(cmd, f->c);
  cmd->callback([f, cmd] {
    check_json_flag(f->c, {{"--data", f->o.data_dir}, {"--config", f->o.config_path}, {"--out", f->o.out_dir}});
    auto rt = setup(f->c);
    auto o = f->o;
    // Flags the user did not give come from the preset's recipe (train/dense.h).
    const train::TrainRecipe r = train::preset_recipe(o.config_path.empty() ? o.preset : "small");
    if (!cmd->count("--steps") && !cmd->count("--epochs")) {
      o.loop.steps = r.steps;
      o.epochs = r.epochs;
    }
    if (!cmd->count("--batch")) o.loop.batch = r.batch;
    if (!cmd->count("--lr")) o.loop.lr = r.lr;
    if (!cmd->count("--warmup")) o.loop.warmup = r.warmup;
    auto res = train::train_dense(o, rt, progress_printer());
    if (!rt.is_root()) return;  // rank 0 reports and writes --json
    if (res.loop.interrupted) {
      info("stopped after step " + std::to_string(res.loop.steps) + "; continue with --resume");
      return;
    }
    char line[256];
    std::snprintf(line, sizeof line,
                  "trained %s: %lld steps in %.1f s (%.1f sequences/s, %.1f questions/s, %.2f GFLOP/s), final loss %.4f, "
                  "val accuracy %.4f",
                  o.out_dir.c_str(), static_cast<long long>(res.loop.steps), res.loop.seconds, res.loop.examples_per_s,
                  res.questions_per_s, res.gflop_per_s, res.loop.final_loss, res.val_accuracy);
    info(line);
    write_json(f->c.json_path, {{"seconds", res.loop.seconds},
                                {"final_loss", res.loop.final_loss},
                                {"steps", res.loop.steps},
                                {"samples_per_s", res.loop.examples_per_s},
                                {"questions_per_s", res.questions_per_s},
                                {"gflop_per_s", res.gflop_per_s},
                                {"params", res.params},
                                {"val_accuracy", res.val_accuracy},
                                {"threads", rt.threads}});
  });
}

}  // namespace ressa::cli
