// `ressa repair`: SparseLoRA cross-modality repair of a pruned model (with distillation from the
// dense model), the exact-sparsity merge, and the baselines (--adapter lora|masked-ft, --kd-weight 0).
#include <iostream>

#include "common.h"
#include "ressa/repair/repair.h"

namespace ressa::cli {

void register_repair(CLI::App& app) {
  struct Flags {
    ComputeFlags c;
    repair::RepairOptions o;
    std::string adapter = "sparse-lora", targets = "vision,language,projector";
  };
  auto f = std::make_shared<Flags>();
  auto& o = f->o;
  auto* cmd = app.add_subcommand("repair", "repair a pruned model with SparseLoRA + distillation and merge it sparsely");
  cmd->add_option("--dense", o.dense_dir, "the dense model the pruned one came from (distillation teacher)")->required();
  cmd->add_option("--pruned", o.pruned_dir, "pruned model directory (written by ressa prune)")->required();
  cmd->add_option("--data", o.data_dir,
                  "dataset directory (train split trains, val split scores), or a LLaVA conversation file (FILE.json: "
                  "every item trains, nothing is scored)")
      ->required();
  cmd->add_option("--image-folder", o.image_folder,
                  "LLaVA conversation file: its image paths are relative to this directory (default: the file's)");
  cmd->add_option("--out", o.out_dir, "repaired model directory to write")->required();
  cmd->add_option("--adapter", f->adapter, "sparse-lora (default), lora (dense merge baseline) or masked-ft")
      ->check(CLI::IsMember({"sparse-lora", "lora", "masked-ft"}));
  cmd->add_option("--kd-weight", o.kd_weight, "λ: weight of the distillation term, 0..1")->capture_default_str();
  cmd->add_option("--temperature", o.temperature, "distillation softmax temperature")->capture_default_str();
  cmd->add_option("--targets", f->targets, "comma-separated subset of vision,language,projector")->capture_default_str();
  cmd->add_option("--rank-vision", o.adapter.rank_vision, "LoRA rank in vision blocks")->capture_default_str();
  cmd->add_option("--rank-language", o.adapter.rank_language, "LoRA rank in language blocks")->capture_default_str();
  cmd->add_option("--rank-projector", o.adapter.rank_projector, "LoRA rank of the projector")->capture_default_str();
  cmd->add_option("--alpha", o.adapter.alpha, "LoRA alpha (scale = alpha / rank)")->capture_default_str();
  cmd->add_option("--steps", o.loop.steps, "optimizer steps")->capture_default_str();
  cmd->add_option("--batch", o.loop.batch, "examples per step")->capture_default_str();
  cmd->add_option("--micro-batch", o.loop.micro_batch,
                  "run each step's batch in chunks of N examples, accumulating gradients (less memory; 0 = whole batch)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--checkpointing", o.checkpointing,
                "keep only each block's input and recompute the block in backward (less memory, about 1/3 more time)");
  cmd->add_option("--lr", o.loop.lr, "peak learning rate")->capture_default_str();
  cmd->add_option("--warmup", o.loop.warmup, "warm-up steps")->capture_default_str();
  cmd->add_option("--weight-decay", o.loop.weight_decay, "AdamW weight decay")->capture_default_str();
  cmd->add_option("--checkpoint-every", o.loop.checkpoint_every, "write a resumable checkpoint every N steps")
      ->capture_default_str();
  cmd->add_flag("--resume", o.loop.resume, "continue an interrupted run from <out>.ckpt");
  cmd->add_option("--seed", o.seed, "adapter initialisation and data order")->capture_default_str();
  cmd->add_option("--limit", o.val_limit, "val examples scored before/after (0 = skip)")->capture_default_str();
  cmd->add_option("--val-limit", o.val_limit)->group("");  // earlier name of --limit
  add_compute_flags(cmd, f->c, true);
  add_dist_flags(cmd, f->c);
  cmd->callback([f] {
    auto o = f->o;
    o.adapter.kind = model::parse_adapter_kind(f->adapter);
    o.adapter.targets = repair::parse_targets(f->targets);
    o.validate();  // every flag checked before any output exists
    check_json_flag(f->c, {{"--dense", o.dense_dir}, {"--pruned", o.pruned_dir}, {"--data", o.data_dir}, {"--out", o.out_dir}});
    auto rt = setup(f->c);
    auto res = repair::repair_model(o, rt, progress_printer());
    if (!rt.is_root()) return;  // rank 0 reports and writes --json
    char line[320];
    std::snprintf(line, sizeof line, "repaired %s (%s, kd %.3g, T %.3g, targets %s): %lld steps in %.1f s, final loss %.4f",
                  o.out_dir.c_str(), f->adapter.c_str(), o.kd_weight, o.temperature,
                  repair::to_string(o.adapter.targets).c_str(), static_cast<long long>(res.loop.steps),
                  res.loop.seconds, res.loop.final_loss);
    std::string msg = line;
    if (o.val_limit > 0) {
      std::snprintf(line, sizeof line, "; val accuracy dense %.4f, pruned %.4f, repaired %.4f (n=%lld)", res.val_dense,
                    res.val_before, res.val_after, static_cast<long long>(res.val_n));
      msg += line;
    }
    info(msg);
    if (o.adapter.kind == model::AdapterKind::Lora)
      info("lora merge filled " + std::to_string(res.merge.filled_pruned_positions) + " of " +
           std::to_string(res.merge.pruned_positions) + " pruned positions");
    nlohmann::json j = {{"seconds", res.loop.seconds},
                        {"steps", res.loop.steps},
                        {"final_loss", res.loop.final_loss},
                        {"adapter", f->adapter},
                        {"kd_weight", o.kd_weight},
                        {"temperature", o.temperature},
                        {"targets", repair::to_string(o.adapter.targets)},
                        {"adapted_layers", res.adapted_layers},
                        {"trainable_params", res.trainable_params},
                        {"pruned_positions", res.merge.pruned_positions},
                        {"filled_pruned_positions", res.merge.filled_pruned_positions},
                        {"samples_per_s", res.loop.examples_per_s},
                        {"threads", rt.threads},
                        {"sparsity", {{"vision", res.sparsity.vision},
                                      {"language", res.sparsity.language},
                                      {"overall", res.sparsity.overall},
                                      {"model", res.sparsity.model}}}};
    if (res.sparsity.nm_checked) j["nm_valid"] = res.sparsity.nm_valid;
    if (o.val_limit > 0)
      j["val_accuracy"] = {{"dense", res.val_dense}, {"before", res.val_before}, {"after", res.val_after}, {"n", res.val_n}};
    write_json(f->c.json_path, j);
  });
}

}  // namespace ressa::cli
