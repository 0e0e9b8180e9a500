// llm-compressor recipes <-> `ressa prune` options (docs/recipes.md): a recipe is read into the
// same PruneModelOptions the flags make, and every pruned model records the recipe its options
// resolve to, so `ressa prune --recipe <out>/recipe.yaml` replays it.
#pragma once
#include "ressa/io/recipe.h"
#include "ressa/prune/driver.h"

namespace ressa::prune {

// `base` with the recipe's pruning settings (method, patterns, targets, ignore, overrides,
// allocation, SparseGPT / DSnoT options); calibration settings stay as in `base`.
PruneModelOptions apply_recipe(const io::PruningRecipe& recipe, PruneModelOptions base);

// The recipe equivalent to the options' pruning settings: apply_recipe(recipe_of(o), o) prunes
// exactly as o does.
io::PruningRecipe recipe_of(const PruneModelOptions& o);

}  // namespace ressa::prune
