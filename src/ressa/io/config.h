// LlavaConfig: the config.json of a Hugging Face LLaVA checkpoint (llava-hf layout), its
// validation, and ressa's built-in presets. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ressa::io {

// CLIP-style vision tower (HF "clip_vision_model").
struct VisionConfig {
  int64_t hidden_size = 128;
  int64_t intermediate_size = 512;
  int64_t num_hidden_layers = 4;
  int64_t num_attention_heads = 4;
  int64_t image_size = 64;
  int64_t patch_size = 8;
  int64_t num_channels = 3;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // "gelu" | "quick_gelu"
  int64_t num_patches() const { return (image_size / patch_size) * (image_size / patch_size); }
};

// Llama-style decoder (HF "llama").
struct TextConfig {
  int64_t vocab_size = 64;
  int64_t hidden_size = 128;
  int64_t intermediate_size = 344;
  int64_t num_hidden_layers = 4;
  int64_t num_attention_heads = 4;
  int64_t num_key_value_heads = 4;
  int64_t max_position_embeddings = 256;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  bool tie_word_embeddings = false;
  std::string hidden_act = "silu";
  int64_t head_dim() const { return hidden_size / num_attention_heads; }
};

struct LlavaConfig {
  VisionConfig vision;
  TextConfig text;
  int64_t image_token_index = 4;
  std::string projector_hidden_act = "gelu";
  int64_t vision_feature_layer = -1;                    // index into hidden states (HF semantics)
  std::string vision_feature_select_strategy = "default";  // "default" drops CLS | "full"
  std::vector<float> image_mean = {0.48145466f, 0.4578275f, 0.40821073f};  // CLIP
  std::vector<float> image_std = {0.26862954f, 0.26130258f, 0.27577711f};

  // Number of image feature tokens spliced into the language sequence per image.
  int64_t image_tokens() const {
    return vision.num_patches() + (vision_feature_select_strategy == "full" ? 1 : 0);
  }
  // Throws std::runtime_error naming `where` and the bad field.
  void validate(const std::string& where) const;
};

// Reads config.json (and preprocessor_config.json beside it, if present, for image mean/std).
LlavaConfig load_config(const std::string& config_json_path);
// Parses a config from JSON text; `where` names the source in error messages.
LlavaConfig parse_config(const std::string& json_text, const std::string& where);
std::string config_to_json(const LlavaConfig&);
// Writes config.json and preprocessor_config.json into `dir` (atomically).
void save_config(const std::string& dir, const LlavaConfig&);

// Built-in presets: "tiny" (tests), "small" (ShapesVQA teacher), "small-p8" (small with 8x8
// patches: the FashionVQA teacher), "base" (larger, for kernels).
LlavaConfig preset_config(const std::string& name);
std::vector<std::string> preset_names();

}  // namespace ressa::io
