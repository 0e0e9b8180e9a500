// `ressa repair`: SparseLoRA cross-modality repair of a pruned model with distillation from the
// dense model it came from, the exact-sparsity merge, and the baselines (plain LoRA, masked
// finetuning, no distillation, single-tower targets). See docs/repair.md.
#pragma once
#include <string>

#include "ressa/core/progress.h"
#include "ressa/eval/sparsity.h"
#include "ressa/model/device.h"
#include "ressa/repair/adapters.h"
#include "ressa/repair/objective.h"
#include "ressa/train/loop.h"

namespace ressa::repair {

struct RepairOptions {
  std::string dense_dir;     // the dense model the pruned one came from (the teacher)
  std::string pruned_dir;    // the pruned model: weights + masks.safetensors + prune.json + tokenizer.json
  std::string data_dir;      // VQA dataset directory (train split trains, val split evaluates), or a
                             // LLaVA conversation file (every item trains; no validation)
  std::string image_folder;  // conversation file: images relative to this (default: the file's directory)
  std::string out_dir;       // repaired model directory to write
  AdapterOptions adapter;    // kind, targets, ranks, alpha
  double kd_weight = 0.1;    // λ: weight of the distillation term (0 = CE only)
  double temperature = 1.0;  // T of the distillation softmax
  bool checkpointing = false;  // activation checkpointing of every block (model/activation_checkpoint.h)
  train::LoopOptions loop = default_loop();  // steps, batch, lr, schedule, checkpoints (dir = <out>.ckpt)
  uint64_t seed = 0;         // adapter initialisation and data order
  int64_t val_limit = 500;   // val examples scored before/after (0 = no evaluation)
  int64_t interrupt_after = 0;  // > 0: throw after this many steps (simulates a kill; tests)
  void validate() const;     // throws std::invalid_argument naming the flag

  // Repair defaults for the loop (docs/repair.md has the measurements behind them).
  static train::LoopOptions default_loop();
};

struct RepairResult {
  train::LoopResult loop;
  double val_dense = -1, val_before = -1, val_after = -1;  // val accuracy (-1 = not evaluated)
  int64_t val_n = 0;
  MergeReport merge;
  TeacherInfo teacher;
  eval::SparsityReport sparsity;  // of the written model
  int64_t adapted_layers = 0;
  int64_t trainable_params = 0;
};

// Checks that <pruned>/prune.json records dense_model.fingerprint == model_fingerprint(dense_dir);
// std::invalid_argument naming both directories and both fingerprints otherwise.
void check_provenance(const std::string& dense_dir, const std::string& pruned_dir);

// Loads the pruned model, attaches the dense teacher and the adapters, trains with the repair
// objective (train::run_loop), merges, verifies the sparsity and writes out_dir atomically:
// a normal model directory + masks.safetensors (the still-sparse layers), tokenizer.json,
// prune.json (copied) and repair.json (the settings and results).
RepairResult repair_model(const RepairOptions& opts, const model::Runtime& rt, const ProgressSink& progress = nullptr);

}  // namespace ressa::repair
