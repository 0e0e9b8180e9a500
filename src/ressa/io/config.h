// LlavaConfig: the config.json of a Hugging Face LLaVA checkpoint (llava-hf layout), its
// validation, and ressa's built-in presets. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ressa/io/key_layout.h"

namespace ressa::io {

// The towers are resolved as transformers builds them: a field absent from config.json takes the
// default of the tower's config class (CLIPVisionConfig, SiglipVisionConfig, LlamaConfig,
// MistralConfig, Qwen2Config; docs/models.md "Configuration"). The member defaults below are
// ressa's own small models' values, used by the presets and by code that builds a config by hand.

// Vision tower: HF "clip_vision_model" (class token, pre-LN) or "siglip_vision_model".
struct VisionConfig {
  int64_t hidden_size = 128;
  int64_t intermediate_size = 512;
  int64_t num_hidden_layers = 4;
  int64_t num_attention_heads = 4;
  int64_t image_size = 64;
  int64_t patch_size = 8;
  int64_t num_channels = 3;
  double layer_norm_eps = 1e-5;
  std::string hidden_act = "quick_gelu";  // "gelu" | "quick_gelu" | "gelu_pytorch_tanh"
  std::string model_type = "clip_vision_model";  // | "siglip_vision_model"
  bool is_siglip() const { return model_type == "siglip_vision_model"; }
  // Patches per side: the patch conv has stride patch_size and no padding, so an image size that
  // is not a multiple of the patch size drops the remainder (as Conv2d does).
  int64_t patches_per_side() const { return image_size / patch_size; }
  int64_t num_patches() const { return patches_per_side() * patches_per_side(); }
  // Tokens the tower's embeddings produce: the patches, plus CLIP's class token.
  int64_t num_positions() const { return num_patches() + (is_siglip() ? 0 : 1); }
};

// Decoder: HF "llama", "mistral" or "qwen2".
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
  bool tie_word_embeddings = false;  // lm_head shares embed_tokens' weight
  std::string hidden_act = "silu";
  std::string model_type = "llama";  // | "mistral" | "qwen2"
  int64_t explicit_head_dim = 0;     // config.json head_dim; 0 = hidden_size / num_attention_heads
  bool qkv_bias = false;             // q/k/v projections have a bias (Qwen2; Llama attention_bias)
  bool o_bias = false;               // o_proj has a bias (Llama attention_bias)
  // Mistral's sliding_window (0 = none). Within the window sliding-window attention equals full
  // attention, so sequences are limited to max_sequence_length() instead of implementing it.
  int64_t sliding_window = 0;
  int64_t max_sequence_length() const {
    return sliding_window > 0 && sliding_window < max_position_embeddings ? sliding_window : max_position_embeddings;
  }
  int64_t head_dim() const { return explicit_head_dim > 0 ? explicit_head_dim : hidden_size / num_attention_heads; }
};

struct LlavaConfig {
  std::string model_type = "llava";  // | "llava_onevision" (sizes resolve; no model is built)
  VisionConfig vision;
  TextConfig text;
  int64_t image_token_index = 4;
  std::string projector_hidden_act = "gelu";
  int64_t vision_feature_layer = -1;                    // index into hidden states (HF semantics)
  std::string vision_feature_select_strategy = "default";  // "default" drops CLS | "full"
  std::vector<float> image_mean = {0.48145466f, 0.4578275f, 0.40821073f};  // CLIP
  std::vector<float> image_std = {0.26862954f, 0.26130258f, 0.27577711f};
  bool projector_bias = true;          // multimodal_projector_bias
  std::string torch_dtype = "float32";  // the checkpoint's stored dtype, as config.json names it
  // How the checkpoint names its tensors (io/key_layout.h): set by load_model from the files,
  // used by save_model and export to write a model back in the layout it was read in.
  KeyLayout key_layout = KeyLayout::kLegacy;
  // config.json as read (an empty string for a config built in code). config_to_json writes
  // every field of it that ressa does not own back unchanged, so a model ressa writes keeps the
  // source's other settings (generation defaults, ids, names).
  std::string source_json;

  // Number of image feature tokens spliced into the language sequence per image: the vision
  // tower's tokens, less the first under the "default" strategy (CLIP's class token; transformers
  // drops the first token for any tower, so ressa does too).
  int64_t image_tokens() const {
    return vision.num_positions() - (vision_feature_select_strategy == "default" ? 1 : 0);
  }
  // Vision blocks whose output reaches the projector: those up to vision_feature_layer (hidden
  // state k is the output of block k-1; -1 is the last). Later blocks are never run.
  int64_t vision_layers_used() const {
    return vision_feature_layer < 0 ? vision.num_hidden_layers + 1 + vision_feature_layer : vision_feature_layer;
  }
  // Throws std::runtime_error naming `where` and the bad field.
  void validate(const std::string& where) const;
  // Throws std::runtime_error for a configuration that resolves but that ressa cannot run
  // (llava_onevision's any-resolution tiling), naming `where` and what is supported.
  void check_runnable(const std::string& where) const;
};

// Reads config.json (and preprocessor_config.json beside it, if present, for image mean/std),
// resolved and validated; check_runnable too.
LlavaConfig load_config(const std::string& config_json_path);
// The same, without check_runnable: what `ressa inspect --config-only` reports.
LlavaConfig resolve_config(const std::string& config_json_path);
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
