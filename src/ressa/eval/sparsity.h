// Sparsity accounting that counts only what pruning targets (method.md §5 defect 8):
//   vision   = zeros / weights of the Linears inside the vision encoder blocks
//   language = zeros / weights of the Linears inside the language model blocks
//   overall  = zeros / weights of both towers' block Linears together
//   model    = zeros / all parameters of the model (embeddings, norms, projector, lm_head included)
#pragma once
#include <string>
#include <vector>

#include "ressa/model/llava.h"

namespace ressa::eval {

struct LayerSparsity {
  std::string name;
  double sparsity = 0;
  int64_t numel = 0;
  bool nm_valid = true;  // meaningful when an N:M pattern is checked
};

struct SparsityReport {
  double vision = 0, language = 0, overall = 0, model = 0;
  std::vector<LayerSparsity> layers;  // the targeted Linears
  // Set when check_n/check_m > 0: every targeted layer that is pruned has >= n zeros per m group.
  bool nm_checked = false;
  bool nm_valid = false;
};

// check_n/check_m: an N:M pattern to validate (0 = none). Layers with no zeros are skipped
// in the N:M check (a tower left dense is not an N:M violation).
SparsityReport sparsity_report(model::Llava& net, int check_n = 0, int check_m = 0);

}  // namespace ressa::eval
