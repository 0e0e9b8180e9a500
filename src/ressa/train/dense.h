// Dense training of a Llava model from scratch on a VQA dataset directory (`ressa train`).
#pragma once
#include <string>

#include "ressa/core/progress.h"
#include "ressa/model/device.h"
#include "ressa/train/loop.h"

namespace ressa::train {

struct DenseTrainOptions {
  std::string data_dir;      // dataset directory (train/val/test.jsonl + images)
  std::string out_dir;       // model directory to write
  std::string preset = "small";
  std::string config_path;   // config.json overriding the preset ("" = preset)
  uint64_t seed = 0;         // model init and data order
  double epochs = 0;         // > 0: steps = epochs * n_train / batch (overrides loop.steps)
  int64_t val_limit = 500;   // validation examples used for periodic accuracy
  // Pack the questions that share an image into one sequence (vqa_data.h); then a step's
  // batch counts images (sequences), not questions. Off: one question per sequence.
  bool pack = true;
  bool checkpointing = false;  // activation checkpointing of every block (model/activation_checkpoint.h)
  LoopOptions loop;          // steps, batch, lr, schedule, checkpoints (dir set from out_dir)
};

// How a built-in preset is trained by default (flags override each field). Chosen by measurement:
// docs/benchmarks.md has the runs behind them.
struct TrainRecipe {
  int64_t steps = 0;   // optimizer steps (0: use epochs)
  double epochs = 0;   // passes over the training split when steps == 0
  int64_t batch = 32;
  double lr = 1e-3;
  int64_t warmup = 100;
};
TrainRecipe preset_recipe(const std::string& preset);

struct DenseTrainResult {
  LoopResult loop;
  double val_accuracy = 0;
  double questions_per_s = 0;  // supervised questions per second (samples_per_s counts sequences)
  double gflop_per_s = 0;  // achieved training FLOP rate (6 * params * tokens per second, estimated)
  int64_t params = 0;
};

DenseTrainResult train_dense(const DenseTrainOptions& opts, const model::Runtime& rt, const ProgressSink& progress);

}  // namespace ressa::train
