// The studies of `ressa reproduce` (docs/method.md §4) as a job graph plus the table of
// results each one reads back: the allocation study (vision:language split of a sparsity
// budget), the modality study (prune both towers, language only, vision only), and the repair
// table (methods x patterns: dense / prune-only / prune+RESSA, ablations, seeds) and the layer-wise
// allocation comparison (uniform vs OWL, prune only and + RESSA). Torch-free:
// every artifact is made by a `ressa` child process (runner.h).
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ressa/study/jobs.h"

namespace ressa::study {

struct StudyOptions {
  bool quick = false;
  std::vector<std::string> tasks{"shapes"};  // shapes, fashion
  std::vector<uint64_t> seeds{0, 1, 2};      // seeds of the Wanda/SparseGPT repair rows (quick: first only)
  int threads = 1;                           // --threads of every child
  int64_t repair_steps = 0;                  // 0 = the mode's default (quick 200, full 400)
  int64_t calib_samples = 128;
  int64_t eval_limit = 0;                    // test examples scored per model (0 = the whole split)
  std::string dense_dirs_root;               // folder holding shipped dense models <task>-small/ ("" = none)
  std::string preset = "small";
  int64_t train_steps = 0;                   // > 0: --steps of dense training (tests); 0 = ressa train's default
  int64_t train_examples = 0;                // > 0: --train of the generated datasets (tests); 0 = default
  // Which studies to run (all by default): allocation, modality, repair (with its ablations), owl.
  std::vector<std::string> sections{"allocation", "modality", "repair", "owl"};
  bool runs(const std::string& section) const;
};
// The names StudyOptions::sections accepts.
const std::vector<std::string>& study_sections();

// One result row: which evaluation jobs to read and the configuration they belong to.
struct Row {
  std::string section;  // allocation | modality | repair | ablation | owl
  std::string task;
  nlohmann::json config;               // method, pattern, vision/language sparsity, adapter, seed, ...
  std::string eval_id;                 // evaluation of the row's model
  std::string prune_id, repair_id;     // artifacts behind it ("" when none)
};

struct Study {
  JobGraph graph;
  std::vector<Row> rows;
  std::map<std::string, std::string> dense_eval;        // task -> eval id of the dense model
  std::map<std::string, std::string> dense_blind_eval;  // task -> eval id of the dense model, --blind
  std::map<std::string, nlohmann::json> task_info;      // task -> data seed, dense model path, ...
  explicit Study(std::string cache) : graph(std::move(cache)) {}
};

// Builds every job and row of the studies for the options.
Study plan_study(const StudyOptions& opts, const std::string& cache_dir);

}  // namespace ressa::study
