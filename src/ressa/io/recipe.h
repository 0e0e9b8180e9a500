// The pruning part of an llm-compressor recipe (YAML): parse_pruning_recipe reads the one pruning
// modifier a recipe holds (SparseGPT, Wanda, magnitude, or ressa's DSnoT) into PruningRecipe,
// refusing every key ressa does not implement; to_yaml writes one back in llm-compressor's
// layout. The accepted format, every key and the errors are in docs/recipes.md. Torch-free.
#pragma once
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ressa::io {

// The pruning part of an llm-compressor recipe, as ressa runs it (docs/recipes.md).
// parse_pruning_recipe returns it canonical: sparsity is N/M under an N:M mask_structure,
// mask_structure is "0:0" or "N:M" with plain integers, sparsity_profile is "" or "owl", and each
// override's text is as prune::SparsityPattern::to_string writes it ("0.6", "2:4").
struct PruningRecipe {
  std::string modifier;                 // "SparseGPTModifier", "WandaPruningModifier", "MagnitudePruningModifier" or ressa's "DSnoTPruningModifier"
  double sparsity = 0;                  // fraction of weights pruned, [0, 1); with an N:M mask_structure it is ignored/must be absent or equal n/m
  std::string mask_structure = "0:0";   // "0:0" = unstructured, else "N:M" (N zeros in every M consecutive weights of a row; 0 < N < M)
  std::vector<std::string> targets;     // name patterns: "Linear", "re:<regex>", or exact module names; empty = not given
  std::vector<std::string> ignore;      // same syntax
  std::string sparsity_profile;         // "" (uniform) or "owl"
  double owl_m = 5;                     // OWL's outlier threshold M
  double owl_lmbda = 0.08;              // OWL's lambda
  std::optional<int> block_size;        // SparseGPT only
  std::optional<double> dampening_frac; // SparseGPT only
  std::optional<std::string> dsnot_base;  // DSnoT only: "wanda", "magnitude" or "sparsegpt"
  std::optional<std::string> granularity; // ressa extension key ressa_granularity: "row" or "matrix"
  std::vector<std::pair<std::string, std::string>> overrides;  // ressa extension key ressa_overrides: ordered map name-pattern -> pattern text ("0.6" or "2:4"); first match wins
};

// Parses YAML text; `where` (e.g. the file path) prefixes every error. Throws std::invalid_argument
// with a message naming the offending key (and the supported ones) for anything ressa does not
// implement, and for YAML syntax errors (with the line).
PruningRecipe parse_pruning_recipe(const std::string& yaml_text, const std::string& where);
// Reads the file (std::runtime_error if unreadable), then parse_pruning_recipe.
PruningRecipe load_pruning_recipe(const std::string& path);

// The recipe as YAML in llm-compressor's layout, readable by parse_pruning_recipe (round trip:
// equal struct for any struct parse_pruning_recipe returns):
//   pruning_stage:
//     pruning_modifiers:
//       <Modifier>:
//         sparsity: ...
// Every field that has a value is written (optional ones only when set; sparsity_profile only
// when "owl", then owl_m and owl_lmbda too; overrides as the ressa_overrides mapping, in order);
// numbers are written with the fewest digits that read back to the same double. Under an N:M
// mask_structure the sparsity written is N/M. Throws std::invalid_argument (the parser's message)
// for a struct parse_pruning_recipe would refuse, so what it returns always reads back.
std::string to_yaml(const PruningRecipe& r);

bool operator==(const PruningRecipe& a, const PruningRecipe& b);  // field by field (for tests)
inline bool operator!=(const PruningRecipe& a, const PruningRecipe& b) { return !(a == b); }

}  // namespace ressa::io
