// config.json <-> LlavaConfig (HF LlavaConfig field names), validation and presets.
#include "ressa/io/config.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>

#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"

namespace ressa::io {
namespace {
using json = nlohmann::json;

// Optional fields with a strict type check; the error names the file and the field. nlohmann's
// get<T>() would convert silently (3.7 -> 3, true -> 1) or, for a double beyond int64, invoke
// undefined behaviour, so each JSON type is checked here.
const json* find_opt(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}
[[noreturn]] void wrong_type(const json& v, const char* key, const char* want, const std::string& where,
                             const std::string& prefix) {
  fail("[load_config] ", where, ": field '", prefix, key, "' must be ", want, ", got ", v.type_name());
}
void get_opt(const json& j, const char* key, int64_t& out, const std::string& where, const std::string& prefix) {
  const json* v = find_opt(j, key);
  if (!v) return;
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
    fail("[load_config] ", where, ": field '", prefix, key, "' = ", v->get<uint64_t>(), " is too large");
  if (!v->is_number_integer()) wrong_type(*v, key, "an integer", where, prefix);
  out = v->get<int64_t>();
}
void get_opt(const json& j, const char* key, double& out, const std::string& where, const std::string& prefix) {
  const json* v = find_opt(j, key);
  if (!v) return;
  if (!v->is_number()) wrong_type(*v, key, "a number", where, prefix);
  out = v->get<double>();
}
void get_opt(const json& j, const char* key, bool& out, const std::string& where, const std::string& prefix) {
  const json* v = find_opt(j, key);
  if (!v) return;
  if (!v->is_boolean()) wrong_type(*v, key, "true or false", where, prefix);
  out = v->get<bool>();
}
void get_opt(const json& j, const char* key, std::string& out, const std::string& where, const std::string& prefix) {
  const json* v = find_opt(j, key);
  if (!v) return;
  if (!v->is_string()) wrong_type(*v, key, "a string", where, prefix);
  out = v->get<std::string>();
}
void get_opt(const json& j, const char* key, std::vector<float>& out, const std::string& where,
             const std::string& prefix) {
  const json* v = find_opt(j, key);
  if (!v) return;
  if (!v->is_array()) wrong_type(*v, key, "an array of numbers", where, prefix);
  std::vector<float> vals;
  for (const json& e : *v) {
    // A double outside float's range cannot be converted (undefined behaviour), so check first.
    if (!e.is_number() || std::fabs(e.get<double>()) > double(std::numeric_limits<float>::max()))
      fail("[load_config] ", where, ": field '", prefix, key, "' must hold numbers within float range");
    vals.push_back(static_cast<float>(e.get<double>()));
  }
  out = std::move(vals);
}

// Upper bound for every size field: far above any LLaVA checkpoint (vocab 256k, hidden 8k,
// 1M positions), low enough that products of two sizes cannot overflow int64.
constexpr int64_t kMaxSize = int64_t(1) << 24;

void check_pos(int64_t v, const char* field, const std::string& where) {
  RESSA_CHECK(v > 0, "[load_config] ", where, ": '", field, "' must be > 0, got ", v);
  RESSA_CHECK(v <= kMaxSize, "[load_config] ", where, ": '", field, "' = ", v, " is larger than ", kMaxSize);
}
void check_eps(double v, const char* field, const std::string& where) {
  RESSA_CHECK(v > 0 && std::isfinite(v), "[load_config] ", where, ": '", field, "' must be > 0, got ", v);
}
}  // namespace

void LlavaConfig::validate(const std::string& where) const {
  const auto& v = vision;
  const auto& t = text;
  check_pos(v.hidden_size, "vision_config.hidden_size", where);
  check_pos(v.intermediate_size, "vision_config.intermediate_size", where);
  check_pos(v.num_hidden_layers, "vision_config.num_hidden_layers", where);
  check_pos(v.num_attention_heads, "vision_config.num_attention_heads", where);
  check_pos(v.image_size, "vision_config.image_size", where);
  check_pos(v.patch_size, "vision_config.patch_size", where);
  RESSA_CHECK(v.num_channels == 3, "[load_config] ", where, ": vision_config.num_channels must be 3, got ", v.num_channels);
  RESSA_CHECK(v.hidden_size % v.num_attention_heads == 0, "[load_config] ", where,
              ": vision_config.hidden_size ", v.hidden_size, " not divisible by num_attention_heads ", v.num_attention_heads);
  RESSA_CHECK(v.image_size % v.patch_size == 0, "[load_config] ", where, ": vision_config.image_size ", v.image_size,
              " not divisible by patch_size ", v.patch_size);
  RESSA_CHECK(v.hidden_act == "gelu" || v.hidden_act == "quick_gelu", "[load_config] ", where,
              ": vision_config.hidden_act must be gelu or quick_gelu, got '", v.hidden_act, "'");
  check_eps(v.layer_norm_eps, "vision_config.layer_norm_eps", where);
  check_pos(t.vocab_size, "text_config.vocab_size", where);
  check_pos(t.hidden_size, "text_config.hidden_size", where);
  check_pos(t.intermediate_size, "text_config.intermediate_size", where);
  check_pos(t.num_hidden_layers, "text_config.num_hidden_layers", where);
  check_pos(t.num_attention_heads, "text_config.num_attention_heads", where);
  check_pos(t.num_key_value_heads, "text_config.num_key_value_heads", where);
  check_pos(t.max_position_embeddings, "text_config.max_position_embeddings", where);
  check_eps(t.rms_norm_eps, "text_config.rms_norm_eps", where);
  check_eps(t.rope_theta, "text_config.rope_theta", where);
  RESSA_CHECK(t.hidden_size % t.num_attention_heads == 0 && t.head_dim() % 2 == 0, "[load_config] ", where,
              ": text_config.hidden_size ", t.hidden_size, " / num_attention_heads ", t.num_attention_heads,
              " must give an even head_dim");
  RESSA_CHECK(t.num_attention_heads % t.num_key_value_heads == 0, "[load_config] ", where,
              ": text_config.num_attention_heads ", t.num_attention_heads, " not divisible by num_key_value_heads ",
              t.num_key_value_heads);
  RESSA_CHECK(!t.tie_word_embeddings, "[load_config] ", where,
              ": text_config.tie_word_embeddings = true is not supported (LLaVA checkpoints use an untied lm_head)");
  RESSA_CHECK(t.hidden_act == "silu", "[load_config] ", where, ": text_config.hidden_act must be silu, got '", t.hidden_act, "'");
  RESSA_CHECK(projector_hidden_act == "gelu", "[load_config] ", where, ": projector_hidden_act must be gelu, got '",
              projector_hidden_act, "'");
  RESSA_CHECK(vision_feature_select_strategy == "default" || vision_feature_select_strategy == "full", "[load_config] ",
              where, ": vision_feature_select_strategy must be default or full, got '", vision_feature_select_strategy, "'");
  RESSA_CHECK(vision_feature_layer >= -(v.num_hidden_layers + 1) && vision_feature_layer <= v.num_hidden_layers,
              "[load_config] ", where, ": vision_feature_layer ", vision_feature_layer, " out of range for ",
              v.num_hidden_layers, " layers");
  RESSA_CHECK(image_token_index >= 0 && image_token_index < t.vocab_size, "[load_config] ", where,
              ": image_token_index ", image_token_index, " outside vocab_size ", t.vocab_size);
  RESSA_CHECK(image_mean.size() == 3 && image_std.size() == 3, "[load_config] ", where, ": image_mean/image_std need 3 values");
  for (float s : image_std) RESSA_CHECK(s > 0, "[load_config] ", where, ": image_std must be > 0");
}

LlavaConfig parse_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail("[load_config] ", where, ": not valid JSON: ", e.what());
  }
  RESSA_CHECK(j.is_object(), "[load_config] ", where, ": top level must be a JSON object");
  std::string model_type = "llava";
  get_opt(j, "model_type", model_type, where, "");
  RESSA_CHECK(model_type == "llava", "[load_config] ", where, ": model_type must be 'llava', got '", model_type, "'");
  RESSA_CHECK(j.contains("vision_config") && j["vision_config"].is_object(), "[load_config] ", where,
              ": missing object 'vision_config'");
  RESSA_CHECK(j.contains("text_config") && j["text_config"].is_object(), "[load_config] ", where,
              ": missing object 'text_config'");
  LlavaConfig c;
  const json& v = j["vision_config"];
  const std::string vp = "vision_config.";
  get_opt(v, "hidden_size", c.vision.hidden_size, where, vp);
  get_opt(v, "intermediate_size", c.vision.intermediate_size, where, vp);
  get_opt(v, "num_hidden_layers", c.vision.num_hidden_layers, where, vp);
  get_opt(v, "num_attention_heads", c.vision.num_attention_heads, where, vp);
  get_opt(v, "image_size", c.vision.image_size, where, vp);
  get_opt(v, "patch_size", c.vision.patch_size, where, vp);
  get_opt(v, "num_channels", c.vision.num_channels, where, vp);
  get_opt(v, "layer_norm_eps", c.vision.layer_norm_eps, where, vp);
  get_opt(v, "hidden_act", c.vision.hidden_act, where, vp);
  const json& t = j["text_config"];
  const std::string tp = "text_config.";
  get_opt(t, "vocab_size", c.text.vocab_size, where, tp);
  get_opt(t, "hidden_size", c.text.hidden_size, where, tp);
  get_opt(t, "intermediate_size", c.text.intermediate_size, where, tp);
  get_opt(t, "num_hidden_layers", c.text.num_hidden_layers, where, tp);
  get_opt(t, "num_attention_heads", c.text.num_attention_heads, where, tp);
  c.text.num_key_value_heads = c.text.num_attention_heads;
  get_opt(t, "num_key_value_heads", c.text.num_key_value_heads, where, tp);
  get_opt(t, "max_position_embeddings", c.text.max_position_embeddings, where, tp);
  get_opt(t, "rms_norm_eps", c.text.rms_norm_eps, where, tp);
  get_opt(t, "rope_theta", c.text.rope_theta, where, tp);
  get_opt(t, "tie_word_embeddings", c.text.tie_word_embeddings, where, tp);
  get_opt(t, "hidden_act", c.text.hidden_act, where, tp);
  get_opt(j, "image_token_index", c.image_token_index, where, "");
  get_opt(j, "projector_hidden_act", c.projector_hidden_act, where, "");
  get_opt(j, "vision_feature_layer", c.vision_feature_layer, where, "");
  get_opt(j, "vision_feature_select_strategy", c.vision_feature_select_strategy, where, "");
  c.validate(where);
  return c;
}

LlavaConfig load_config(const std::string& path) {
  RESSA_CHECK(std::filesystem::exists(path), "[load_config] ", path, ": file not found");
  LlavaConfig c = parse_config(read_file(path), path);
  auto pre = std::filesystem::path(path).parent_path() / "preprocessor_config.json";
  if (std::filesystem::exists(pre)) {
    json p;
    try {
      p = json::parse(read_file(pre.string()));
    } catch (const std::exception& e) {
      fail("[load_config] ", pre.string(), ": not valid JSON: ", e.what());
    }
    RESSA_CHECK(p.is_object(), "[load_config] ", pre.string(), ": top level must be a JSON object");
    get_opt(p, "image_mean", c.image_mean, pre.string(), "");
    get_opt(p, "image_std", c.image_std, pre.string(), "");
    c.validate(pre.string());
  }
  return c;
}

std::string config_to_json(const LlavaConfig& c) {
  json j;
  j["architectures"] = {"LlavaForConditionalGeneration"};
  j["model_type"] = "llava";
  j["image_token_index"] = c.image_token_index;
  j["projector_hidden_act"] = c.projector_hidden_act;
  j["vision_feature_layer"] = c.vision_feature_layer;
  j["vision_feature_select_strategy"] = c.vision_feature_select_strategy;
  j["torch_dtype"] = "float32";
  j["vision_config"] = {{"model_type", "clip_vision_model"},
                        {"hidden_size", c.vision.hidden_size},
                        {"intermediate_size", c.vision.intermediate_size},
                        {"num_hidden_layers", c.vision.num_hidden_layers},
                        {"num_attention_heads", c.vision.num_attention_heads},
                        {"image_size", c.vision.image_size},
                        {"patch_size", c.vision.patch_size},
                        {"num_channels", c.vision.num_channels},
                        {"layer_norm_eps", c.vision.layer_norm_eps},
                        {"hidden_act", c.vision.hidden_act}};
  j["text_config"] = {{"model_type", "llama"},
                      {"vocab_size", c.text.vocab_size},
                      {"hidden_size", c.text.hidden_size},
                      {"intermediate_size", c.text.intermediate_size},
                      {"num_hidden_layers", c.text.num_hidden_layers},
                      {"num_attention_heads", c.text.num_attention_heads},
                      {"num_key_value_heads", c.text.num_key_value_heads},
                      {"max_position_embeddings", c.text.max_position_embeddings},
                      {"rms_norm_eps", c.text.rms_norm_eps},
                      {"rope_theta", c.text.rope_theta},
                      {"tie_word_embeddings", c.text.tie_word_embeddings},
                      {"hidden_act", c.text.hidden_act}};
  return j.dump(2) + "\n";
}

void save_config(const std::string& dir, const LlavaConfig& c) {
  write_file_atomic((std::filesystem::path(dir) / "config.json").string(), config_to_json(c));
  json p = {{"image_processor_type", "CLIPImageProcessor"},
            {"image_mean", c.image_mean},
            {"image_std", c.image_std},
            {"size", {{"shortest_edge", c.vision.image_size}}},
            {"crop_size", {{"height", c.vision.image_size}, {"width", c.vision.image_size}}}};
  write_file_atomic((std::filesystem::path(dir) / "preprocessor_config.json").string(), p.dump(2) + "\n");
}

LlavaConfig preset_config(const std::string& name) {
  LlavaConfig c;
  if (name == "tiny") {
    c.vision = VisionConfig{32, 64, 2, 2, 32, 8, 3, 1e-5, "quick_gelu"};
    c.text.hidden_size = 32;
    c.text.intermediate_size = 64;
    c.text.num_hidden_layers = 2;
    c.text.num_attention_heads = 2;
    c.text.num_key_value_heads = 2;
  } else if (name == "small" || name == "small-p8") {
    // Vision and language towers of comparable size (~0.8M pruneable weights each).
    // small: 16x16 patches, 16 image tokens (enough for ShapesVQA). small-p8: 8x8 patches, 64
    // image tokens, ~2.5x the time per example; FashionVQA's photos need them (test 0.751 with
    // 16x16 patches, 0.828 with 8x8 at the same 10,000 steps; docs/benchmarks.md).
    c.vision = VisionConfig{128, 512, 4, 4, 64, name == "small" ? 16 : 8, 3, 1e-5, "quick_gelu"};
    c.text.hidden_size = 128;
    c.text.intermediate_size = 352;
    c.text.num_hidden_layers = 4;
    c.text.num_attention_heads = 4;
    c.text.num_key_value_heads = 4;
  } else if (name == "base") {
    // Large enough that the weights do not fit in cache (sparse-kernel end-to-end runs).
    c.vision = VisionConfig{512, 2048, 6, 8, 64, 8, 3, 1e-5, "quick_gelu"};
    c.text.hidden_size = 512;
    c.text.intermediate_size = 1376;
    c.text.num_hidden_layers = 6;
    c.text.num_attention_heads = 8;
    c.text.num_key_value_heads = 8;
  } else {
    fail_arg("[preset_config] unknown preset '", name, "' (expected tiny, small, small-p8 or base)");
  }
  return c;
}

std::vector<std::string> preset_names() { return {"tiny", "small", "small-p8", "base"}; }

}  // namespace ressa::io
