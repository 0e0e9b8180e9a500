// Name patterns for pruning targets (see module_rules.h).
#include "ressa/prune/module_rules.h"

#include "ressa/core/error.h"

namespace ressa::prune {

NamePattern NamePattern::parse(const std::string& text) {
  RESSA_CHECK_ARG(!text.empty(), "[prune] an empty module name pattern (expected \"Linear\", \"re:<regex>\" or a name)");
  NamePattern p;
  p.text_ = text;
  if (text == "Linear") {
    p.all_default_ = true;
  } else if (text.rfind("re:", 0) == 0) {
    p.is_regex_ = true;
    try {
      p.re_ = std::regex(text.substr(3), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      fail_arg("[prune] '", text, "' is not a valid regular expression: ", e.what());
    }
  }
  return p;
}

bool NamePattern::matches(const std::vector<std::string>& names, bool default_target) const {
  if (all_default_) return default_target;
  for (const auto& n : names)
    if (is_regex_ ? std::regex_match(n, re_) : n == text_) return true;
  return false;
}

PatternOverride PatternOverride::parse(const std::string& text) {
  const auto eq = text.rfind('=');
  RESSA_CHECK_ARG(eq != std::string::npos && eq > 0 && eq + 1 < text.size(), "[prune] --override '", text,
                  "': expected NAMES=PATTERN, e.g. 're:.*mlp.*=0.6' or 're:.*self_attn.*=2:4'");
  try {
    return {NamePattern::parse(text.substr(0, eq)), SparsityPattern::parse(text.substr(eq + 1))};
  } catch (const std::invalid_argument& e) {
    fail_arg("[prune] --override '", text, "': ", e.what());
  }
}

std::string PatternOverride::to_string() const { return names.text() + "=" + pattern.to_string(); }

bool ModuleRules::selects(const std::vector<std::string>& names, bool default_target) const {
  bool in = targets.empty() ? default_target : false;
  for (const auto& t : targets) in = in || t.matches(names, default_target);
  if (!in) return false;
  for (const auto& i : ignore)
    if (i.matches(names, default_target)) return false;
  return true;
}

const PatternOverride* ModuleRules::override_for(const std::vector<std::string>& names, bool default_target) const {
  for (const auto& o : overrides)
    if (o.names.matches(names, default_target)) return &o;
  return nullptr;
}

}  // namespace ressa::prune
