// Mapping between the legacy and the transformers >= 4.52 tensor names of LLaVA checkpoints.
#include "ressa/io/key_layout.h"

#include <utility>

#include "ressa/core/error.h"

namespace ressa::io {
namespace {
// (module prefix, transformers-5 file prefix); lm_head is matched before the wider prefixes.
const std::pair<const char*, const char*> kPrefixes[] = {
    {"language_model.lm_head.", "lm_head."},
    {"language_model.model.", "model.language_model."},
    {"vision_tower.", "model.vision_tower."},
    {"multi_modal_projector.", "model.multi_modal_projector."},
};

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }
}  // namespace

std::string to_string(KeyLayout layout) { return layout == KeyLayout::kLegacy ? "legacy" : "transformers5"; }

KeyLayout parse_key_layout(const std::string& name) {
  if (name == "legacy") return KeyLayout::kLegacy;
  if (name == "transformers5") return KeyLayout::kTransformers5;
  fail_arg("[parse_key_layout] unknown key layout '", name, "' (expected legacy or transformers5)");
}

KeyLayout detect_key_layout(const std::vector<std::string>& file_names) {
  for (const auto& n : file_names)
    if (starts_with(n, "model.language_model.") || starts_with(n, "model.vision_tower.") ||
        starts_with(n, "model.multi_modal_projector."))
      return KeyLayout::kTransformers5;
  return KeyLayout::kLegacy;
}

std::string to_module_name(const std::string& file_name, KeyLayout layout) {
  if (layout == KeyLayout::kLegacy) return file_name;
  for (const auto& [mod, file] : kPrefixes)
    if (starts_with(file_name, file)) return mod + file_name.substr(std::string(file).size());
  return file_name;
}

std::string to_file_name(const std::string& module_name, KeyLayout layout) {
  if (layout == KeyLayout::kLegacy) return module_name;
  for (const auto& [mod, file] : kPrefixes)
    if (starts_with(module_name, mod)) return file + module_name.substr(std::string(mod).size());
  return module_name;
}

}  // namespace ressa::io
