// Which Linear layers `ressa prune` targets and with which pattern, by name (docs/cli.md "prune",
// docs/recipes.md): targets / ignore lists and per-pattern overrides, written as llm-compressor
// writes module names. Torch-free.
#pragma once
#include <regex>
#include <string>
#include <utility>
#include <vector>

#include "ressa/prune/pattern.h"

namespace ressa::prune {

// One name pattern: "re:<regex>" matches a module name in full (ECMAScript syntax), "Linear"
// matches every layer ressa prunes by default (the Linears of both towers' blocks, as
// llm-compressor's default targets are the decoder layers' Linears), anything else is an exact
// module name. Names are Hugging Face module names without ".weight"; a layer matches when
// either its name in the layout ressa uses internally (language_model.model.layers.0.mlp.up_proj)
// or its name in the checkpoint's own layout (model.language_model.layers.0.mlp.up_proj) does.
class NamePattern {
 public:
  static NamePattern parse(const std::string& text);  // throws std::invalid_argument on a bad regex
  bool matches(const std::vector<std::string>& names, bool default_target) const;
  const std::string& text() const { return text_; }

 private:
  std::string text_;
  bool all_default_ = false;
  bool is_regex_ = false;
  std::regex re_;
};

// A pattern for the layers a name pattern matches: "RE=0.6" or "re:.*mlp.*=2:4" (the text after
// the last '=' is the pattern).
struct PatternOverride {
  NamePattern names;
  SparsityPattern pattern;
  static PatternOverride parse(const std::string& text);  // throws std::invalid_argument
  std::string to_string() const;                          // "<names>=<pattern>"
};

struct ModuleRules {
  std::vector<NamePattern> targets;          // empty = the default targets
  std::vector<NamePattern> ignore;
  std::vector<PatternOverride> overrides;    // first match wins

  bool empty() const { return targets.empty() && ignore.empty() && overrides.empty(); }
  // Whether a layer known by `names` is pruned: matched by a target (or, without targets, one
  // of the default targets) and by no ignore pattern.
  bool selects(const std::vector<std::string>& names, bool default_target) const;
  // The first override matching `names`, or null.
  const PatternOverride* override_for(const std::vector<std::string>& names, bool default_target) const;
};

}  // namespace ressa::prune
