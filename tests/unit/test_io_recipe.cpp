// Tests for io/recipe: llm-compressor's own recipes (tests/fixtures/recipes, README.md there)
// read field by field, every refusal naming its key and path, YAML syntax errors with their line,
// and to_yaml -> parse_pruning_recipe round trips.
#include "ressa/io/recipe.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <initializer_list>
#include <stdexcept>
#include <string>

using ressa::io::load_pruning_recipe;
using ressa::io::parse_pruning_recipe;
using ressa::io::PruningRecipe;
using ressa::io::to_yaml;

namespace {

std::string fixture(const std::string& name) {
  return std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/recipes/" + name;
}

// The message parse_pruning_recipe throws for `yaml` ("" when it accepts it).
std::string error_of(const std::string& yaml) {
  try {
    (void)parse_pruning_recipe(yaml, "t.yaml");
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

// Expects a refusal whose message holds every one of `parts`.
void expect_error(const std::string& yaml, std::initializer_list<const char*> parts) {
  const std::string msg = error_of(yaml);
  EXPECT_FALSE(msg.empty()) << "accepted:\n" << yaml;
  for (const char* p : parts) EXPECT_NE(msg.find(p), std::string::npos) << "'" << p << "' not in: " << msg;
}

// A recipe holding one modifier with the given argument lines (each indented under it).
std::string with_args(const std::string& modifier, std::initializer_list<const char*> lines) {
  std::string y = "pruning_stage:\n  pruning_modifiers:\n    " + modifier + ":\n";
  for (const char* l : lines) y += std::string("      ") + l + "\n";
  return y;
}
std::string sgpt(std::initializer_list<const char*> lines) { return with_args("SparseGPTModifier", lines); }

PruningRecipe parse(const std::string& yaml) { return parse_pruning_recipe(yaml, "t.yaml"); }

}  // namespace

// ---- llm-compressor's own recipes ---------------------------------------------------------------

TEST(Recipe, Sparse24FromLlmCompressorTests) {
  const PruningRecipe r = load_pruning_recipe(fixture("sparse_24.yaml"));
  EXPECT_EQ(r.modifier, "SparseGPTModifier");
  EXPECT_EQ(r.sparsity, 0.5);
  EXPECT_EQ(r.mask_structure, "2:4");
  EXPECT_EQ(r.targets, std::vector<std::string>{"Linear"});
  EXPECT_EQ(r.ignore, std::vector<std::string>{"re:.*lm_head"});
  EXPECT_EQ(r.sparsity_profile, "");
  EXPECT_FALSE(r.block_size.has_value());
  EXPECT_FALSE(r.dampening_frac.has_value());
  EXPECT_FALSE(r.dsnot_base.has_value());
  EXPECT_FALSE(r.granularity.has_value());
  EXPECT_TRUE(r.overrides.empty());
}

TEST(Recipe, SparseGPTDocstringSampleEveryArgument) {
  const PruningRecipe r = load_pruning_recipe(fixture("sparsegpt_docstring.yaml"));
  EXPECT_EQ(r.modifier, "SparseGPTModifier");
  EXPECT_EQ(r.sparsity, 0.5);
  EXPECT_EQ(r.mask_structure, "2:4");
  EXPECT_EQ(r.dampening_frac, 0.001);
  EXPECT_EQ(r.block_size, 128);
  EXPECT_EQ(r.targets, std::vector<std::string>{"Linear"});
  EXPECT_EQ(r.ignore, std::vector<std::string>{"re:.*lm_head"});
}

TEST(Recipe, SparseGPTTestRecipes) {
  const PruningRecipe a = load_pruning_recipe(fixture("sparsegpt_sparse.yaml"));
  EXPECT_EQ(a.sparsity, 0.3);
  EXPECT_EQ(a.mask_structure, "0:0");
  EXPECT_EQ(a.block_size, 128);
  EXPECT_EQ(a.dampening_frac, 0.01);
  EXPECT_EQ(a.targets, (std::vector<std::string>{"model.layers.0", "model.layers.1"}));
  EXPECT_TRUE(a.ignore.empty());
  // A flow list with a trailing comma.
  const PruningRecipe b = load_pruning_recipe(fixture("sparsegpt_sparse_with_mask_structure.yaml"));
  EXPECT_EQ(b.mask_structure, "2:4");
  EXPECT_EQ(b.sparsity, 0.5);
  EXPECT_EQ(b.targets, std::vector<std::string>{"re:.*model.layers.0$"});
}

TEST(Recipe, WandaRecipes) {
  const PruningRecipe a = load_pruning_recipe(fixture("wanda_docstring.yaml"));
  EXPECT_EQ(a.modifier, "WandaPruningModifier");
  EXPECT_EQ(a.sparsity, 0.5);
  EXPECT_EQ(a.mask_structure, "2:4");
  EXPECT_TRUE(a.targets.empty());
  const PruningRecipe b = load_pruning_recipe(fixture("wanda_50.yaml"));  // with a version: key
  EXPECT_EQ(b.modifier, "WandaPruningModifier");
  EXPECT_EQ(b.sparsity, 0.5);
  EXPECT_EQ(b.mask_structure, "0:0");
  EXPECT_EQ(b.targets, std::vector<std::string>{"Linear"});
  EXPECT_EQ(b.ignore, std::vector<std::string>{"re:.*lm_head"});
}

TEST(Recipe, OwlRecipe) {
  const PruningRecipe r = load_pruning_recipe(fixture("sparsegpt_owl.yaml"));
  EXPECT_EQ(r.sparsity, 0.7);
  EXPECT_EQ(r.sparsity_profile, "owl");
  EXPECT_EQ(r.owl_m, 5);
  EXPECT_EQ(r.owl_lmbda, 0.05);
  EXPECT_EQ(r.mask_structure, "0:0");
}

TEST(Recipe, MagnitudeOneShot) {
  const PruningRecipe r = load_pruning_recipe(fixture("magnitude_one_shot.yaml"));
  EXPECT_EQ(r.modifier, "MagnitudePruningModifier");
  EXPECT_EQ(r.sparsity, 0.4);
  EXPECT_EQ(r.mask_structure, "0:0");  // "unstructured", llm-compressor's magnitude spelling
  EXPECT_EQ(r.targets, (std::vector<std::string>{"re:.*self_attn.*_proj", "re:.*mlp.*_proj"}));
}

TEST(Recipe, DSnoTWithRessaKeys) {
  const PruningRecipe r = load_pruning_recipe(fixture("dsnot_ressa_keys.yaml"));  // a top-level group
  EXPECT_EQ(r.modifier, "DSnoTPruningModifier");
  EXPECT_EQ(r.sparsity, 0.6);
  EXPECT_EQ(r.dsnot_base, "sparsegpt");
  EXPECT_EQ(r.targets, std::vector<std::string>{"Linear"});  // a single string
  EXPECT_EQ(r.ignore, (std::vector<std::string>{"re:.*lm_head", "multi_modal_projector.linear_1"}));
  EXPECT_EQ(r.granularity, "matrix");
  const std::vector<std::pair<std::string, std::string>> overrides = {{"re:.*vision_tower.*", "0.4"},
                                                                      {"re:.*mlp\\.down_proj", "2:4"}};
  EXPECT_EQ(r.overrides, overrides);
}

TEST(Recipe, RecipesWithOtherModifiersAreRefused) {
  for (const char* name : {"sparse_24_fp8.yaml", "sparsegpt_quant_and_sparse.yaml"}) {
    try {
      (void)load_pruning_recipe(fixture(name));
      ADD_FAILURE() << name << " accepted";
    } catch (const std::invalid_argument& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find("pruning modifiers only"), std::string::npos) << msg;
      EXPECT_NE(msg.find(fixture(name)), std::string::npos) << msg;
      if (std::string(name) == "sparse_24_fp8.yaml") {
        EXPECT_NE(msg.find("quant_stage.quant_modifiers.QuantizationModifier"), std::string::npos) << msg;
      } else {
        EXPECT_NE(msg.find("test_stage.obcq_modifiers.GPTQModifier"), std::string::npos) << msg;
      }
    }
  }
}

TEST(Recipe, LlmCompressorArgumentsRessaDoesNotImplementAreRefused) {
  const auto refused = [](const std::string& name, const std::string& part) {
    try {
      (void)load_pruning_recipe(fixture(name));
      ADD_FAILURE() << name << " accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(part), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("supports: sparsity, mask_structure"), std::string::npos) << e.what();
    }
  };
  refused("sparsegpt_additional_sparsity.yaml", "test_stage.obcq_modifiers.SparseGPTModifier.preserve_sparsity_mask");
  // The 2:4 + W4A16 example: its first stage's run_type: oneshot is accepted, the fine-tuning stage
  // that follows is not.
  try {
    (void)load_pruning_recipe(fixture("2of4_w4a16_recipe.yaml"));
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("2of4_w4a16_recipe.yaml:9: finetuning_stage.run_type: ressa runs one-shot"),
              std::string::npos)
        << e.what();
  }
  // Its pruning stage alone: sequential_update (deprecated in llm-compressor) is refused.
  expect_error("sparsity_stage:\n  run_type: oneshot\n  sparsity_modifiers:\n    SparseGPTModifier:\n"
               "      sparsity: 0.5\n      mask_structure: \"2:4\"\n      sequential_update: false\n",
               {"t.yaml:7", "sparsity_stage.sparsity_modifiers.SparseGPTModifier.sequential_update: unknown key"});
}

// ---- document shapes --------------------------------------------------------------------------

TEST(Recipe, DocumentShapes) {
  const std::string args = "      SparseGPTModifier:\n        sparsity: 0.25\n";
  EXPECT_EQ(parse("pruning_modifiers:\n  SparseGPTModifier: {sparsity: 0.25}\n").sparsity, 0.25);
  EXPECT_EQ(parse("version: 1.1\nsparsity_stage:\n  run_type: oneshot\n  sparsity_modifiers:\n"
                  "    WandaPruningModifier: {sparsity: 0.25}\n")
                .modifier,
            "WandaPruningModifier");
  // A JSON recipe is YAML too.
  EXPECT_EQ(parse(R"({"a_stage": {"b_modifiers": {"SparseGPTModifier": {"sparsity": 0.25, "mask_structure": "0:0"}}}})")
                .sparsity,
            0.25);
  // Comments, anchors and aliases.
  const PruningRecipe r = parse("# comment\nx_stage:\n  y_modifiers:\n    SparseGPTModifier:\n"
                                "      targets: &t [\"re:.*q_proj\"]\n      ignore: *t\n      sparsity: 0.1\n");
  EXPECT_EQ(r.targets, r.ignore);
}

TEST(Recipe, DocumentShapeErrors) {
  expect_error("", {"t.yaml", "empty"});
  expect_error("# only a comment\n", {"empty"});
  expect_error("- a\n- b\n", {"t.yaml:1", "a mapping of stages", "got a list"});
  expect_error("just text", {"a mapping of stages"});
  expect_error("pruning_modifiers:\n  SparseGPTModifier: {sparsity: 0.5}\n---\nb: 1\n",
               {"t.yaml:3", "more than one YAML document"});
  expect_error(",", {"more than one YAML document"});  // yaml-cpp's LoadAll never returns on it
  expect_error("version: 1\n", {"no pruning modifier", "SparseGPTModifier"});
  expect_error("version: 1\nrecipe:\n  a: 1\n", {"t.yaml:2", "recipe: unknown top-level key"});
  expect_error("a_stage:\n  b_modifiers: {SparseGPTModifier: {sparsity: 0.5}}\n  options: 1\n",
               {"t.yaml:3", "a_stage.options: unknown key in a stage"});
  expect_error("a_stage:\n  run_type: train\n  b_modifiers: {SparseGPTModifier: {sparsity: 0.5}}\n",
               {"a_stage.run_type", "one-shot"});
  expect_error("a_stage: 3\n", {"a_stage", "a stage is a mapping"});
  expect_error("a_stage:\n  b_modifiers: [SparseGPTModifier]\n", {"a_stage.b_modifiers", "a group is a mapping"});
  expect_error("a_stage:\n  b_modifiers:\n    SparseGPTModifier: [0.5]\n",
               {"a_stage.b_modifiers.SparseGPTModifier", "arguments are a mapping"});
  expect_error("a_stage:\n  b_modifiers:\n    SparseGPTModifier:\n", {"sparsity is required"});
  expect_error("? [a, b]\n: 1\n", {"a key must be a string"});
  expect_error(sgpt({"sparsity: 0.5", "sparsity: 0.6"}), {"t.yaml:5", "SparseGPTModifier.sparsity: duplicate key"});
}

TEST(Recipe, OtherModifiersAndSecondPruningModifierAreRefused) {
  expect_error("a_stage:\n  b_modifiers:\n    SmoothQuantModifier: {smoothing_strength: 0.8}\n"
               "    SparseGPTModifier: {sparsity: 0.5}\n",
               {"t.yaml:3", "a_stage.b_modifiers.SmoothQuantModifier", "not a pruning modifier",
                "pruning modifiers only", "DSnoTPruningModifier"});
  expect_error("a_stage:\n  b_modifiers:\n    SparseGPTModifier: {sparsity: 0.5}\n"
               "c_stage:\n  d_modifiers:\n    WandaPruningModifier: {sparsity: 0.5}\n",
               {"t.yaml:6", "c_stage.d_modifiers.WandaPruningModifier", "a second pruning modifier",
                "a_stage.b_modifiers.SparseGPTModifier, line 3"});
  expect_error("a_stage:\n  b_modifiers:\n    ConstantPruningModifier: {targets: Linear}\n",
               {"ConstantPruningModifier is not a pruning modifier"});
}

TEST(Recipe, UnknownKeyNamesPathAndSupportedKeys) {
  const std::string msg = error_of(sgpt({"sparsity: 0.5", "sequential_update: true"}));
  EXPECT_NE(msg.find("[parse_pruning_recipe] t.yaml:5: pruning_stage.pruning_modifiers.SparseGPTModifier."
                     "sequential_update: unknown key; SparseGPTModifier supports: sparsity, mask_structure, targets, "
                     "ignore, sparsity_profile, owl_m, owl_lmbda, block_size, dampening_frac, ressa_granularity, "
                     "ressa_overrides"),
            std::string::npos)
      << msg;
  expect_error(with_args("WandaPruningModifier", {"sparsity: 0.5", "offload_hessians: true"}),
               {"WandaPruningModifier.offload_hessians: unknown key", "WandaPruningModifier supports"});
}

// ---- values -----------------------------------------------------------------------------------

TEST(Recipe, Sparsity) {
  EXPECT_EQ(parse(sgpt({"sparsity: 0"})).sparsity, 0);
  EXPECT_EQ(parse(sgpt({"sparsity: \"0.45\""})).sparsity, 0.45);  // a number in a string, as pydantic reads it
  EXPECT_EQ(parse(sgpt({"sparsity: 5e-1"})).sparsity, 0.5);
  for (const char* bad : {"sparsity: 1", "sparsity: 1.5", "sparsity: -0.1", "sparsity: abc", "sparsity: .inf",
                          "sparsity: nan", "sparsity: 0x0.8p0", "sparsity: 0.5x", "sparsity: \" 0.5\""})
    expect_error(sgpt({bad}), {"SparseGPTModifier.sparsity", "expected a number in [0, 1)"});
  expect_error(sgpt({"sparsity: [0.5, 0.6]"}),
               {"SparseGPTModifier.sparsity", "per-layer sparsity lists", "ressa_overrides"});
  expect_error(sgpt({"sparsity: {a: 0.5}"}), {"per-layer sparsity lists"});
  expect_error(sgpt({"targets: Linear"}), {"t.yaml:3", "pruning_stage.pruning_modifiers.SparseGPTModifier",
                                           "sparsity is required"});
  expect_error(sgpt({"sparsity: null"}), {"sparsity is required"});  // null = absent
}

TEST(Recipe, MaskStructure) {
  const PruningRecipe nm = parse(sgpt({"mask_structure: \"2:4\""}));  // sparsity absent: N/M
  EXPECT_EQ(nm.mask_structure, "2:4");
  EXPECT_EQ(nm.sparsity, 0.5);
  EXPECT_EQ(parse(sgpt({"mask_structure: \"1:3\"", "sparsity: 0.3333333333333333"})).sparsity, 1.0 / 3);
  EXPECT_EQ(parse(sgpt({"mask_structure: 4:8", "sparsity: 0.5"})).mask_structure, "4:8");
  EXPECT_EQ(parse(sgpt({"mask_structure: \"02:04\""})).mask_structure, "2:4");
  EXPECT_EQ(parse(sgpt({"mask_structure: \"0:0\"", "sparsity: 0.2"})).mask_structure, "0:0");
  EXPECT_EQ(parse(sgpt({"mask_structure: unstructured", "sparsity: 0.2"})).mask_structure, "0:0");
  for (const char* bad : {"mask_structure: \"2:2\"", "mask_structure: \"4:2\"", "mask_structure: \"0:4\"",
                          "mask_structure: \"2:x\"", "mask_structure: \"2:4:8\"", "mask_structure: \"-1:4\"",
                          "mask_structure: \"2\"", "mask_structure: [2, 4]"})
    expect_error(sgpt({bad, "sparsity: 0.5"}), {"SparseGPTModifier.mask_structure", "\"N:M\""});
  expect_error(sgpt({"mask_structure: channel", "sparsity: 0.5"}), {"channel, filter and block structures"});
  expect_error(sgpt({"mask_structure: \"2:4\"", "sparsity: 0.6"}),
               {"t.yaml:5", "SparseGPTModifier.sparsity", "does not match mask_structure 2:4", "0.5"});
}

TEST(Recipe, TargetsAndIgnore) {
  const PruningRecipe r = parse(sgpt({"sparsity: 0.5", "targets: \"re:.*mlp.*\"", "ignore: [a, 're:b.*']"}));
  EXPECT_EQ(r.targets, std::vector<std::string>{"re:.*mlp.*"});
  EXPECT_EQ(r.ignore, (std::vector<std::string>{"a", "re:b.*"}));
  EXPECT_TRUE(parse(sgpt({"sparsity: 0.5", "targets: ~", "ignore: null"})).targets.empty());
  expect_error(sgpt({"sparsity: 0.5", "targets: [[a]]"}), {"SparseGPTModifier.targets", "an item that is a list"});
  expect_error(sgpt({"sparsity: 0.5", "ignore: {a: 1}"}), {"SparseGPTModifier.ignore", "got a mapping"});
  expect_error(sgpt({"sparsity: 0.5", "targets: []"}), {"SparseGPTModifier.targets", "empty list", "default targets"});
  expect_error(sgpt({"sparsity: 0.5", "ignore: [\"\"]"}), {"SparseGPTModifier.ignore", "an empty name pattern"});
}

TEST(Recipe, SparsityProfileAndOwl) {
  const PruningRecipe d = parse(sgpt({"sparsity: 0.5", "sparsity_profile: OWL"}));  // lower-cased, as llm-compressor
  EXPECT_EQ(d.sparsity_profile, "owl");
  EXPECT_EQ(d.owl_m, 5);  // absent: the OWL paper's M and lambda
  EXPECT_EQ(d.owl_lmbda, 0.08);
  const PruningRecipe o = parse(sgpt({"sparsity: 0.5", "sparsity_profile: owl", "owl_m: 7.5", "owl_lmbda: 0"}));
  EXPECT_EQ(o.owl_m, 7.5);
  EXPECT_EQ(o.owl_lmbda, 0);
  EXPECT_EQ(parse(sgpt({"sparsity: 0.5", "sparsity_profile: uniform"})).sparsity_profile, "");
  EXPECT_EQ(parse(sgpt({"sparsity: 0.5", "sparsity_profile: null"})).sparsity_profile, "");
  expect_error(sgpt({"sparsity: 0.5", "sparsity_profile: layerwise"}),
               {"SparseGPTModifier.sparsity_profile", "expected owl or uniform"});
  expect_error(sgpt({"mask_structure: \"2:4\"", "sparsity_profile: owl"}),
               {"SparseGPTModifier.sparsity_profile", "unstructured", "2:4"});
  expect_error(sgpt({"sparsity: 0.5", "owl_m: 5"}), {"SparseGPTModifier.owl_m", "sparsity_profile: owl"});
  expect_error(sgpt({"sparsity: 0.5", "sparsity_profile: uniform", "owl_lmbda: 0.1"}),
               {"SparseGPTModifier.owl_lmbda", "sparsity_profile: owl"});
  expect_error(sgpt({"sparsity: 0.5", "sparsity_profile: owl", "owl_m: 0"}), {"SparseGPTModifier.owl_m", "(0, inf)"});
  expect_error(sgpt({"sparsity: 0.5", "sparsity_profile: owl", "owl_lmbda: -0.01"}),
               {"SparseGPTModifier.owl_lmbda", "[0, inf)"});
}

TEST(Recipe, SparseGPTAndDSnoTArguments) {
  for (const char* bad : {"block_size: 0", "block_size: -8", "block_size: 12.5", "block_size: abc",
                          "block_size: 99999999999"})
    expect_error(sgpt({"sparsity: 0.5", bad}), {"SparseGPTModifier.block_size", "positive integer"});
  expect_error(sgpt({"sparsity: 0.5", "dampening_frac: -0.1"}), {"SparseGPTModifier.dampening_frac", "[0, inf)"});
  expect_error(with_args("WandaPruningModifier", {"sparsity: 0.5", "block_size: 64"}),
               {"WandaPruningModifier.block_size", "a SparseGPTModifier argument", "WandaPruningModifier supports"});
  expect_error(with_args("DSnoTPruningModifier", {"sparsity: 0.5", "dampening_frac: 0.01"}),
               {"DSnoTPruningModifier.dampening_frac", "a SparseGPTModifier argument", "dsnot_base"});
  expect_error(sgpt({"sparsity: 0.5", "dsnot_base: wanda"}),
               {"SparseGPTModifier.dsnot_base", "a DSnoTPruningModifier argument"});
  expect_error(with_args("DSnoTPruningModifier", {"sparsity: 0.5", "dsnot_base: gblm"}),
               {"DSnoTPruningModifier.dsnot_base", "wanda, magnitude or sparsegpt"});
  for (const char* base : {"wanda", "magnitude", "sparsegpt"}) {
    const std::string line = std::string("dsnot_base: ") + base;
    EXPECT_EQ(parse(with_args("DSnoTPruningModifier", {"sparsity: 0.5", line.c_str()})).dsnot_base, base);
  }
}

TEST(Recipe, RessaExtensionKeys) {
  EXPECT_EQ(parse(sgpt({"sparsity: 0.5", "ressa_granularity: row"})).granularity, "row");
  expect_error(sgpt({"sparsity: 0.5", "ressa_granularity: column"}),
               {"SparseGPTModifier.ressa_granularity", "row or matrix"});
  // Order kept, texts canonical (as prune::SparsityPattern::to_string writes them).
  const PruningRecipe r = parse(sgpt({"mask_structure: \"2:4\"", "ressa_overrides:", "  z: 0.60", "  a: \"4:08\"",
                                      "  \"re:.*\": .5"}));
  const std::vector<std::pair<std::string, std::string>> want = {{"z", "0.6"}, {"a", "4:8"}, {"re:.*", "0.5"}};
  EXPECT_EQ(r.overrides, want);
  for (const char* bad : {"  a: 1.0", "  a: \"2:2\"", "  a: \"0:4\"", "  a: [2, 4]", "  a: x"})
    expect_error(sgpt({"sparsity: 0.5", "ressa_overrides:", bad}), {"SparseGPTModifier.ressa_overrides.a", "expected"});
  expect_error(sgpt({"sparsity: 0.5", "ressa_overrides: [a, b]"}), {"SparseGPTModifier.ressa_overrides", "a mapping"});
  expect_error(sgpt({"sparsity: 0.5", "ressa_overrides:", "  a: 0.1", "  a: 0.2"}),
               {"SparseGPTModifier.ressa_overrides.a: duplicate key"});
  expect_error(sgpt({"sparsity: 0.5", "ressa_overrides:", "  \"\": 0.1"}), {"an empty name pattern"});
}

TEST(Recipe, MagnitudeIsOneShot) {
  const auto mag = [](std::initializer_list<const char*> l) { return with_args("MagnitudePruningModifier", l); };
  EXPECT_EQ(parse(mag({"sparsity: 0.3"})).sparsity, 0.3);
  EXPECT_EQ(parse(mag({"final_sparsity: 0.3"})).sparsity, 0.3);
  EXPECT_EQ(parse(mag({"init_sparsity: 0.3", "final_sparsity: 0.3", "targets: [Linear]"})).sparsity, 0.3);
  EXPECT_EQ(parse(mag({"final_sparsity: 0.5", "mask_structure: \"2:4\""})).mask_structure, "2:4");
  for (const char* key : {"start: 0", "end: 10", "update_frequency: 1", "update: 0.5", "update_scheduler: cubic",
                          "leave_enabled: false"})
    expect_error(mag({"final_sparsity: 0.5", key}), {"MagnitudePruningModifier.", "ressa prunes in one shot"});
  expect_error(mag({"init_sparsity: 0.05", "final_sparsity: 0.5"}),
               {"MagnitudePruningModifier.init_sparsity", "differs from final_sparsity", "one shot"});
  expect_error(mag({"init_sparsity: 0.5"}), {"MagnitudePruningModifier.init_sparsity", "needs final_sparsity"});
  expect_error(mag({"sparsity: 0.5", "final_sparsity: 0.5"}), {"MagnitudePruningModifier.final_sparsity", "not both"});
  expect_error(mag({"targets: Linear"}), {"sparsity (or final_sparsity) is required"});
  expect_error(mag({"final_sparsity: 0.6", "mask_structure: \"2:4\""}),
               {"MagnitudePruningModifier.final_sparsity", "does not match mask_structure 2:4"});
  expect_error(sgpt({"sparsity: 0.5", "start: 0"}), {"SparseGPTModifier.start", "one shot"});
  expect_error(sgpt({"final_sparsity: 0.5"}), {"SparseGPTModifier.final_sparsity: unknown key"});
}

TEST(Recipe, YamlSyntaxErrorNamesFileAndLine) {
  const std::string msg = error_of("pruning_stage:\n  pruning_modifiers:\n    SparseGPTModifier: {sparsity: 0.5\n");
  EXPECT_NE(msg.find("[parse_pruning_recipe] t.yaml:"), std::string::npos) << msg;
  EXPECT_NE(msg.find("YAML syntax error"), std::string::npos) << msg;
  const std::string tab = error_of("a_stage:\n  b_modifiers:\n\t  SparseGPTModifier: {}\n");
  EXPECT_NE(tab.find("t.yaml:3"), std::string::npos) << tab;
  expect_error("a_stage: b: c\n", {"t.yaml:1", "YAML syntax error"});
  expect_error("a: *nowhere\n", {"YAML syntax error"});
  expect_error("a_stage: " + std::string(100000, '['), {"t.yaml:1", "nested too deeply"});
}

TEST(Recipe, LoadErrors) {
  EXPECT_THROW((void)load_pruning_recipe(fixture("does_not_exist.yaml")), std::runtime_error);
  EXPECT_THROW((void)load_pruning_recipe(fixture("")), std::runtime_error);  // the directory
}

// ---- to_yaml ----------------------------------------------------------------------------------

TEST(Recipe, ToYamlLayout) {
  PruningRecipe r;
  r.modifier = "SparseGPTModifier";
  r.mask_structure = "2:4";
  r.sparsity = 0.5;
  r.ignore = {"re:.*lm_head"};
  r.block_size = 64;
  EXPECT_EQ(to_yaml(r),
            "pruning_stage:\n"
            "  pruning_modifiers:\n"
            "    SparseGPTModifier:\n"
            "      sparsity: 0.5\n"
            "      mask_structure: \"2:4\"\n"
            "      ignore: [\"re:.*lm_head\"]\n"
            "      block_size: 64\n");
}

TEST(Recipe, ToYamlRoundTrip) {
  std::vector<PruningRecipe> cases;
  PruningRecipe a;  // the minimum
  a.modifier = "WandaPruningModifier";
  a.sparsity = 0.1 + 0.2;  // 0.30000000000000004: every digit matters
  cases.push_back(a);

  PruningRecipe b;  // SparseGPT 2:4 with its optionals
  b.modifier = "SparseGPTModifier";
  b.mask_structure = "2:4";
  b.sparsity = 0.5;
  b.targets = {"Linear", "re:.*vision_tower.*"};
  b.ignore = {"re:.*lm_head", "multi_modal_projector.linear_2"};
  b.block_size = 128;
  b.dampening_frac = 1e-7;
  b.granularity = "row";
  cases.push_back(b);

  PruningRecipe c;  // OWL
  c.modifier = "SparseGPTModifier";
  c.sparsity = 0.7;
  c.sparsity_profile = "owl";
  c.owl_m = 1.0 / 3;
  c.owl_lmbda = 0.05;
  c.dampening_frac = 0;
  cases.push_back(c);

  PruningRecipe d;  // DSnoT with overrides, in order
  d.modifier = "DSnoTPruningModifier";
  d.sparsity = 0.6;
  d.dsnot_base = "magnitude";
  d.granularity = "matrix";
  d.overrides = {{"re:.*mlp\\.down_proj", "2:4"}, {"re:.*vision_tower.*", "0.4"}, {"a.b", "0"}};
  cases.push_back(d);

  PruningRecipe e;  // magnitude, N:M
  e.modifier = "MagnitudePruningModifier";
  e.mask_structure = "1:3";
  e.sparsity = 1.0 / 3;
  cases.push_back(e);

  PruningRecipe f;  // names YAML would misread unquoted: quotes, backslashes, '#', ': ', control and non-ASCII
  f.modifier = "WandaPruningModifier";
  f.sparsity = 0.25;
  f.targets = {"a \"b\" \\c", "# not a comment", "k: v", " lead and trail ", "tab\there\nnewline", "\x01\x7f",
               "caf\xc3\xa9 \xe2\x80\xa8 \xf0\x9f\x98\x80", "[x]", "*alias", "&anchor", "- dash", "null", "~"};
  f.overrides = {{"{brace}", "0.5"}, {std::string(1500, 'w'), "2:4"}};
  cases.push_back(f);

  for (const PruningRecipe& r : cases) {
    const std::string y = to_yaml(r);
    PruningRecipe back;
    try {
      back = parse_pruning_recipe(y, "round trip");
    } catch (const std::invalid_argument& ex) {
      ADD_FAILURE() << ex.what() << "\n" << y;
      continue;
    }
    EXPECT_EQ(back, r) << y;
    EXPECT_EQ(to_yaml(back), y);
  }
  // The fixtures, read, written and read again.
  for (const char* name : {"sparse_24.yaml", "sparsegpt_docstring.yaml", "sparsegpt_sparse.yaml", "wanda_50.yaml",
                           "sparsegpt_owl.yaml", "magnitude_one_shot.yaml", "dsnot_ressa_keys.yaml"}) {
    const PruningRecipe r = load_pruning_recipe(fixture(name));
    EXPECT_EQ(parse_pruning_recipe(to_yaml(r), name), r) << name << "\n" << to_yaml(r);
  }
}

TEST(Recipe, ToYamlRefusesWhatCannotBeRead) {
  PruningRecipe r;
  r.sparsity = 0.5;
  EXPECT_THROW((void)to_yaml(r), std::invalid_argument);  // no modifier
  r.modifier = "GPTQModifier";
  EXPECT_THROW((void)to_yaml(r), std::invalid_argument);
  r.modifier = "WandaPruningModifier";
  r.sparsity = 1.5;
  EXPECT_THROW((void)to_yaml(r), std::invalid_argument);
  r.sparsity = 0.5;
  r.block_size = 128;  // SparseGPT only
  try {
    (void)to_yaml(r);
    ADD_FAILURE() << "accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[to_yaml]"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("block_size"), std::string::npos) << e.what();
  }
  r.block_size.reset();
  r.overrides = {{"a", "1.5"}};
  EXPECT_THROW((void)to_yaml(r), std::invalid_argument);
}
