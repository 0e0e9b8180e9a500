// The two ways LLaVA checkpoints name their tensors. transformers before 4.52 (and ressa's own
// models) use "language_model.model.layers.0...", "language_model.lm_head.weight",
// "vision_tower..." and "multi_modal_projector..."; transformers 4.52 and later save
// "model.language_model.layers.0...", "lm_head.weight", "model.vision_tower..." and
// "model.multi_modal_projector...". ressa's modules use the first names; io::Checkpoint maps a
// file in the second layout onto them, and a model is written back in the layout it was read in.
#pragma once
#include <string>
#include <vector>

namespace ressa::io {

enum class KeyLayout { kLegacy, kTransformers5 };

// "legacy" | "transformers5".
std::string to_string(KeyLayout layout);
// Throws std::invalid_argument for another name.
KeyLayout parse_key_layout(const std::string& name);

// The layout of a checkpoint from its tensor names: kTransformers5 when any name starts with
// "model.language_model.", "model.vision_tower." or "model.multi_modal_projector.".
KeyLayout detect_key_layout(const std::vector<std::string>& file_names);

// A name in the file's layout -> ressa's module name, and back. Names outside the four
// prefixes are returned unchanged.
std::string to_module_name(const std::string& file_name, KeyLayout layout);
std::string to_file_name(const std::string& module_name, KeyLayout layout);

}  // namespace ressa::io
