// What a resolved LlavaConfig amounts to, without loading weights: parameter counts per tower and
// the resolved settings as JSON (`ressa inspect --config-only`). Torch-free.
#pragma once
#include <cstdint>

#include <nlohmann/json.hpp>

#include "ressa/io/config.h"

namespace ressa::io {

// Parameters of the model ressa builds for `c` (as transformers counts them: a tied lm_head is
// counted once; SigLIP's attention-pooling head, which LLaVA never runs, is not built or counted).
struct ParameterCounts {
  int64_t vision = 0, projector = 0, language = 0;
  int64_t total() const { return vision + projector + language; }
};
ParameterCounts parameter_counts(const LlavaConfig& c);

// {"model_type", "vision": {...}, "text": {...}, "image_tokens", "vision_layers_used",
//  "torch_dtype", "key_layout", ...}: every resolved size, including derived ones (head_dim).
nlohmann::json resolved_config_json(const LlavaConfig& c);

}  // namespace ressa::io
