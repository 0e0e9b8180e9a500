// Whole-model pruning driver (`ressa prune`): calibrates every targeted Linear of a Llava model on
// image+question+answer samples, block by block (vision blocks, then language blocks fed by the
// vision features), prunes it with prune_matrix, and writes the pruned model directory.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <string>
#include <vector>

#include "ressa/core/progress.h"
#include "ressa/eval/sparsity.h"
#include "ressa/io/tokenizer.h"
#include "ressa/model/llava.h"
#include "ressa/prune/methods.h"
#include "ressa/prune/module_rules.h"
#include "ressa/prune/owl.h"
#include "ressa/train/vqa_data.h"

namespace ressa::prune {

struct PruneModelOptions {
  // Sequential: block i is calibrated on the outputs of the already-pruned blocks before it (and
  // the language model on the pruned vision tower's features). Dense: on the dense model's.
  enum class Calib { Sequential, Dense };
  // How a tower's sparsity is spread over its blocks: the same in every block, or OWL's
  // outlier-weighed allocation (unstructured only; the tower's mean stays the requested ratio).
  enum class Allocation { Uniform, Owl };

  Method method = Method::Wanda;
  SparsityPattern vision, language;  // per tower; a dense pattern (ratio 0) leaves the tower untouched
  int64_t calib_samples = 128;       // examples drawn from the calibration set (all if it has fewer)
  uint64_t seed = 0;                 // which examples are drawn (calib_indices)
  Calib calib = Calib::Sequential;
  MethodOptions method_opts;         // granularity, SparseGPT damping/block, DSnoT base/cycles
  bool prune_projector = false;      // also prune multi_modal_projector.linear_{1,2} (language pattern)
  bool prune_lm_head = false;        // also prune language_model.lm_head (language pattern)
  int64_t calib_batch = 16;          // sequences per forward pass during calibration
  Allocation allocation = Allocation::Uniform;
  OwlOptions owl;                    // OWL's M and lambda (allocation Owl)
  ModuleRules rules;                 // targets / ignore / per-pattern overrides by module name
  // Calibration activations: a stage's inputs and outputs are held in memory while together they
  // take at most this many bytes, else the stage's outputs go to an unlinked scratch file in
  // scratch_dir (the system's temp directory when empty) and are read back through its mapping;
  // the same bits either way. 0 = always in memory. prune_model_dir sets it from max_memory.
  int64_t activation_budget = 0;
  std::string scratch_dir;
  // prune_model_dir only: the memory the whole run may take (`--max-memory`; 0 = no limit). The
  // activation budget is what is left after the working set memory_estimate() gives; a limit
  // below that working set is refused before anything is read.
  int64_t max_memory = 0;

  void validate() const;  // throws std::invalid_argument naming the bad field
};
PruneModelOptions::Calib parse_calib(const std::string& s);  // "sequential", "dense"
std::string to_string(PruneModelOptions::Calib c);
PruneModelOptions::Allocation parse_allocation(const std::string& s);  // "uniform", "owl"
std::string to_string(PruneModelOptions::Allocation a);

struct LayerReport {
  std::string name;          // HF name without ".weight"
  std::string tower;         // "vision", "language", "projector" or "lm_head"
  std::string pattern;       // the pattern it was pruned to ("0.55", "2:4"; OWL: its block's ratio)
  double sparsity = 0;       // fraction of exact zeros in the pruned weight
  double recon_error = 0;    // ||XWᵀ - XŴᵀ||² / ||XWᵀ||² over the layer's calibration inputs X
  double seconds = 0;        // prune_matrix + error for this layer
  int64_t calib_rows = 0;    // rows of X (tokens; padding excluded)
  double input_sq_mean = 0;  // mean of x² over X (identifies the calibration stream)
};

struct PruneReport {
  std::vector<LayerReport> layers;  // in pruning order
  eval::SparsityReport sparsity;    // after pruning: vision / language / overall (targeted) and model
  int64_t calib_samples = 0;        // examples actually used
  int64_t activation_spill_bytes = 0;  // calibration activations kept on disk (activation_budget)
  double seconds = 0;               // calibration + pruning
};

// Deterministic choice of k of n examples: all of 0..n-1 when k >= n, else a seeded uniform
// k-subset (Fisher-Yates with mt19937_64, portable across standard libraries), sorted ascending.
std::vector<int64_t> calib_indices(int64_t n, int64_t k, uint64_t seed);

// Prepares only the examples calib_indices(n, k, seed) of the source's train split (a dataset
// directory) or of its n conversations (a LLaVA conversation file), in that order, through the
// model's processor: the whole rendered conversation is what calibration runs.
train::VqaSet load_calibration_set(const data::DataSource& data, const data::Processor& proc,
                                   const io::LlavaConfig& cfg, int64_t k, uint64_t seed);

// Prunes `net` (on `device`) in place: each targeted Linear gets its pruned weight and `mask`
// (bool [out, in], true = kept). Calibration uses calib_indices(calib.size(), calib_samples, seed)
// of `calib`, batched by make_train_batch (right padding; padded positions never feed the
// language statistics). Working memory: the calibration activations [n, T, D] (T = real
// longest sequence of a batch) plus one block's statistics (a float64 XᵀX per distinct layer
// input, shared by layers reading the same tensor, e.g. q/k/v). Validates everything (options,
// N:M divisibility of every targeted layer) before changing the model.
// Where prune_model puts a layer's pruned weight (float32, the layer's shape) and mask (bool):
// empty = copied into its weight in place and set as its mask; prune_model_dir's streamed run
// keeps them in a scratch file instead.
using InstallFn = std::function<void(model::LinearImpl& lin, const torch::Tensor& weight, const torch::Tensor& mask)>;

PruneReport prune_model(model::Llava& net, const train::VqaSet& calib, const io::Tokenizer& tok,
                        const PruneModelOptions& opts, const torch::Device& device,
                        const ProgressSink& progress = {}, const InstallFn& install = {});

// The whole `ressa prune` job: loads the dense model directory, its tokenizer.json and the
// calibration examples of `data`, prunes, and writes <out_dir> atomically: a normal model
// directory (weights with the zeros, masks.safetensors, the dense tokenizer.json copied) plus
// prune.json {method, pattern, vision_pattern, language_pattern, vision_sparsity,
// language_sparsity, granularity, calib, calib_samples, seed, allocation, owl, targets, ignore,
// overrides, layers [{name, tower, pattern, sparsity}], recipe, dense_model {path, fingerprint},
// ressa_version} and recipe.yaml (the same recipe, for `ressa prune --recipe`). Nothing is
// created at out_dir unless the whole job succeeds. On CPU the model is streamed: weights are
// read from the mapped checkpoint block by block and pruned blocks wait in an unlinked scratch
// file beside out_dir (as much disk as the pruned weights and masks), so the memory held is about
// one block's weights plus the calibration activations; the output is the one prune_model gives
// on a model loaded with LoadOptions::stored_dtype, bit for bit.
PruneReport prune_model_dir(const std::string& dense_dir, const data::DataSource& data, const std::string& out_dir,
                            const PruneModelOptions& opts, const torch::Device& device,
                            const ProgressSink& progress = {});

// What streamed pruning holds besides the calibration activations (docs/results/memory "Memory
// model of prune"): the runtime, the embeddings and norms as fp32, one calibration batch's MLP at
// the longest calibration sequence, the pruning of the largest target (and for SparseGPT the
// Hessians of a block and the factorisation of the widest input), and one block's weights five
// times over (read, pruned, masks, and their file pages). Bytes.
int64_t memory_estimate(model::Llava& net, const PruneModelOptions& opts, int64_t calib_sequences, int64_t max_tokens);

// The single "pattern" string recorded for a run: the common pattern when both towers agree,
// the pruned tower's when the other is dense, else "mixed".
std::string combined_pattern(const SparsityPattern& vision, const SparsityPattern& language);

}  // namespace ressa::prune
