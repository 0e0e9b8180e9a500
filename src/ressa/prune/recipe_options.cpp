// Recipes <-> prune options (see recipe_options.h).
#include "ressa/prune/recipe_options.h"

#include "ressa/core/error.h"

namespace ressa::prune {
namespace {

struct ModifierName {
  Method method;
  const char* name;
};
constexpr ModifierName kModifiers[] = {{Method::SparseGPT, "SparseGPTModifier"},
                                       {Method::Wanda, "WandaPruningModifier"},
                                       {Method::Magnitude, "MagnitudePruningModifier"},
                                       {Method::DSnoT, "DSnoTPruningModifier"}};

// Module names of each tower in either key layout (ressa's and transformers >= 4.52's).
const char* kVisionTower = "re:(model\\.)?vision_tower\\..*";
const char* kLanguageModel = "re:(model\\.)?language_model\\..*";

}  // namespace

PruneModelOptions apply_recipe(const io::PruningRecipe& r, PruneModelOptions o) {
  bool known = false;
  for (const auto& m : kModifiers)
    if (r.modifier == m.name) o.method = m.method, known = true;
  RESSA_CHECK_ARG(known, "[prune] recipe modifier '", r.modifier, "' is not a pruning modifier ressa runs");
  const auto colon = r.mask_structure.find(':');
  const bool nm = r.mask_structure != "0:0";
  const SparsityPattern p = nm ? SparsityPattern::nm(std::stoi(r.mask_structure.substr(0, colon)),
                                                     std::stoi(r.mask_structure.substr(colon + 1)))
                               : SparsityPattern::unstructured(r.sparsity);
  o.vision = o.language = p;
  o.prune_projector = o.prune_lm_head = false;  // a recipe names them in its targets
  o.rules = {};
  for (const auto& t : r.targets) o.rules.targets.push_back(NamePattern::parse(t));
  for (const auto& i : r.ignore) o.rules.ignore.push_back(NamePattern::parse(i));
  for (const auto& [names, pattern] : r.overrides)
    o.rules.overrides.push_back({NamePattern::parse(names), SparsityPattern::parse(pattern)});
  o.allocation = r.sparsity_profile == "owl" ? PruneModelOptions::Allocation::Owl : PruneModelOptions::Allocation::Uniform;
  o.owl.threshold = r.owl_m;
  o.owl.lambda = r.owl_lmbda;
  if (r.block_size) o.method_opts.sparsegpt_blocksize = *r.block_size;
  if (r.dampening_frac) o.method_opts.sparsegpt_damp = *r.dampening_frac;
  if (r.dsnot_base) o.method_opts.dsnot_base = parse_method(*r.dsnot_base);
  if (r.granularity) o.method_opts.granularity = parse_granularity(*r.granularity);
  o.validate();
  return o;
}

io::PruningRecipe recipe_of(const PruneModelOptions& o) {
  io::PruningRecipe r;
  for (const auto& m : kModifiers)
    if (o.method == m.method) r.modifier = m.name;
  // One pattern for the recipe; a tower with another one gets an override, a dense tower is ignored.
  const SparsityPattern& base = o.language.is_dense() ? o.vision : o.language;
  if (base.is_nm()) {
    r.mask_structure = base.to_string();
    r.sparsity = static_cast<double>(base.n) / base.m;
  } else {
    r.sparsity = base.ratio;
  }
  const bool explicit_targets = !o.rules.targets.empty();
  if (explicit_targets || o.prune_projector || o.prune_lm_head) {
    if (explicit_targets)
      for (const auto& t : o.rules.targets) r.targets.push_back(t.text());
    else
      r.targets.push_back("Linear");
    // "Linear" in a recipe is the tower blocks only: the flags' extras are named.
    if (o.prune_projector) r.targets.insert(r.targets.end(), {"multi_modal_projector.linear_1", "multi_modal_projector.linear_2"});
    if (o.prune_lm_head) r.targets.push_back("language_model.lm_head");
  }
  for (const auto& i : o.rules.ignore) r.ignore.push_back(i.text());
  for (const auto& ov : o.rules.overrides) r.overrides.emplace_back(ov.names.text(), ov.pattern.to_string());
  if (o.vision.to_string() != base.to_string()) {
    if (o.vision.is_dense()) r.ignore.push_back(kVisionTower);
    else r.overrides.emplace_back(kVisionTower, o.vision.to_string());
  }
  if (o.language.to_string() != base.to_string()) r.ignore.push_back(kLanguageModel);  // language dense
  if (o.allocation == PruneModelOptions::Allocation::Owl) {
    r.sparsity_profile = "owl";
    r.owl_m = o.owl.threshold;
    r.owl_lmbda = o.owl.lambda;
  }
  if (o.method == Method::SparseGPT) {
    r.block_size = o.method_opts.sparsegpt_blocksize;
    r.dampening_frac = o.method_opts.sparsegpt_damp;
  }
  if (o.method == Method::DSnoT) r.dsnot_base = to_string(o.method_opts.dsnot_base);
  r.granularity = to_string(o.method_opts.granularity);
  return r;
}

}  // namespace ressa::prune
