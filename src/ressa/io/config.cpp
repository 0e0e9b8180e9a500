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
  // CLIP's position table has one row per patch of an image_size x image_size input; SigLIP's
  // patch conv simply drops a remainder, as Conv2d does.
  RESSA_CHECK(v.is_siglip() || v.image_size % v.patch_size == 0, "[load_config] ", where, ": vision_config.image_size ",
              v.image_size, " not divisible by patch_size ", v.patch_size);
  RESSA_CHECK(v.patch_size <= v.image_size, "[load_config] ", where, ": vision_config.patch_size ", v.patch_size,
              " is larger than image_size ", v.image_size);
  RESSA_CHECK(v.hidden_act == "gelu" || v.hidden_act == "quick_gelu" || v.hidden_act == "gelu_pytorch_tanh",
              "[load_config] ", where, ": vision_config.hidden_act '", v.hidden_act,
              "' is not supported (supported: gelu, quick_gelu, gelu_pytorch_tanh)");
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
  RESSA_CHECK(t.explicit_head_dim >= 0 && t.explicit_head_dim <= kMaxSize, "[load_config] ", where,
              ": text_config.head_dim must be > 0, got ", t.explicit_head_dim);
  RESSA_CHECK(t.explicit_head_dim > 0 || t.hidden_size % t.num_attention_heads == 0, "[load_config] ", where,
              ": text_config.hidden_size ", t.hidden_size, " not divisible by num_attention_heads ",
              t.num_attention_heads, " (and no head_dim given)");
  RESSA_CHECK(t.head_dim() % 2 == 0, "[load_config] ", where, ": text_config head_dim ", t.head_dim(),
              " must be even (rotary embeddings rotate pairs)");
  RESSA_CHECK(t.num_attention_heads % t.num_key_value_heads == 0, "[load_config] ", where,
              ": text_config.num_attention_heads ", t.num_attention_heads, " not divisible by num_key_value_heads ",
              t.num_key_value_heads);
  RESSA_CHECK(t.sliding_window >= 0, "[load_config] ", where, ": text_config.sliding_window must be >= 0");
  RESSA_CHECK(t.hidden_act == "silu", "[load_config] ", where, ": text_config.hidden_act '", t.hidden_act,
              "' is not supported (supported: silu)");
  RESSA_CHECK(projector_hidden_act == "gelu", "[load_config] ", where, ": projector_hidden_act '", projector_hidden_act,
              "' is not supported (supported: gelu)");
  RESSA_CHECK(vision_feature_select_strategy == "default" || vision_feature_select_strategy == "full", "[load_config] ",
              where, ": vision_feature_select_strategy must be default or full, got '", vision_feature_select_strategy, "'");
  RESSA_CHECK(vision_feature_layer >= -(v.num_hidden_layers + 1) && vision_feature_layer <= v.num_hidden_layers,
              "[load_config] ", where, ": vision_feature_layer ", vision_feature_layer, " out of range for ",
              v.num_hidden_layers, " layers");
  RESSA_CHECK(vision_layers_used() >= 1, "[load_config] ", where, ": vision_feature_layer ", vision_feature_layer,
              " selects the patch embeddings (no vision block): not supported");
  // As in transformers, the image token may lie past vocab_size (its embedding row is never read).
  RESSA_CHECK(image_token_index >= 0, "[load_config] ", where, ": image_token_index ", image_token_index, " must be >= 0");
  RESSA_CHECK(image_mean.size() == 3 && image_std.size() == 3, "[load_config] ", where, ": image_mean/image_std need 3 values");
  for (float s : image_std) RESSA_CHECK(s > 0, "[load_config] ", where, ": image_std must be > 0");
}

void LlavaConfig::check_runnable(const std::string& where) const {
  RESSA_CHECK(model_type == "llava", "[load_config] ", where, ": model_type '", model_type,
              "' resolves (ressa inspect --config-only) but cannot be run: its any-resolution image tiling is not "
              "implemented (runnable: llava)");
}

namespace {
// Hugging Face's defaults for each tower's config class (transformers' Configuration classes:
// CLIPVisionConfig, SiglipVisionConfig, LlamaConfig, MistralConfig, Qwen2Config), applied before
// config.json's fields so a partial text_config resolves to the sizes transformers builds.
const char* const kVisionTypes = "clip_vision_model, siglip_vision_model";
const char* const kTextTypes = "llama, mistral, qwen2";

VisionConfig vision_defaults(const std::string& model_type, const std::string& where) {
  VisionConfig c;
  c.model_type = model_type;
  c.hidden_size = 768;
  c.intermediate_size = 3072;
  c.num_hidden_layers = 12;
  c.num_attention_heads = 12;
  c.num_channels = 3;
  if (model_type == "clip_vision_model") {
    c.image_size = 224;
    c.patch_size = 32;
    c.hidden_act = "quick_gelu";
    c.layer_norm_eps = 1e-5;
  } else if (model_type == "siglip_vision_model") {
    c.image_size = 224;
    c.patch_size = 16;
    c.hidden_act = "gelu_pytorch_tanh";
    c.layer_norm_eps = 1e-6;
  } else {
    fail("[load_config] ", where, ": vision_config.model_type '", model_type, "' is not supported (supported: ",
         kVisionTypes, ")");
  }
  return c;
}

TextConfig text_defaults(const std::string& model_type, const std::string& where) {
  TextConfig c;
  c.model_type = model_type;
  c.hidden_size = 4096;
  c.num_hidden_layers = 32;
  c.num_attention_heads = 32;
  c.rms_norm_eps = 1e-6;
  c.rope_theta = 10000.0;
  c.hidden_act = "silu";
  c.tie_word_embeddings = false;
  if (model_type == "llama") {
    c.vocab_size = 32000;
    c.intermediate_size = 11008;
    c.num_key_value_heads = 0;  // = num_attention_heads unless given
    c.max_position_embeddings = 2048;
  } else if (model_type == "mistral") {
    c.vocab_size = 32000;
    c.intermediate_size = 14336;
    c.num_key_value_heads = 8;
    c.max_position_embeddings = 4096 * 32;
    c.sliding_window = 4096;
  } else if (model_type == "qwen2") {
    c.vocab_size = 151936;
    c.intermediate_size = 22016;
    c.num_key_value_heads = 0;
    c.max_position_embeddings = 32768;
    c.qkv_bias = true;  // Qwen2Attention: q/k/v with bias, o without, whatever the config says
  } else {
    fail("[load_config] ", where, ": text_config.model_type '", model_type, "' is not supported (supported: ",
         kTextTypes, ")");
  }
  return c;
}

// rope_scaling (transformers 4) or rope_parameters (transformers 5): only plain RoPE is
// implemented; its theta may sit inside rope_parameters.
void read_rope(const json& t, TextConfig& c, const std::string& where) {
  for (const char* key : {"rope_scaling", "rope_parameters"}) {
    const json* r = find_opt(t, key);
    if (!r) continue;
    if (!r->is_object()) wrong_type(*r, key, "an object or null", where, "text_config.");
    std::string type = "default";
    get_opt(*r, "rope_type", type, where, std::string("text_config.") + key + ".");
    if (!r->contains("rope_type")) get_opt(*r, "type", type, where, std::string("text_config.") + key + ".");
    RESSA_CHECK(type == "default", "[load_config] ", where, ": text_config.", key, " type '", type,
                "' is not supported (supported: default, i.e. plain RoPE)");
    get_opt(*r, "rope_theta", c.rope_theta, where, std::string("text_config.") + key + ".");
  }
}

// `type`: the model_type the top-level config class assumes when text_config names none
// (LlavaConfig: llama; LlavaOnevisionConfig: qwen2).
TextConfig parse_text(const json& t, std::string type, const std::string& where) {
  const std::string tp = "text_config.";
  get_opt(t, "model_type", type, where, tp);
  TextConfig c = text_defaults(type, where);
  get_opt(t, "vocab_size", c.vocab_size, where, tp);
  get_opt(t, "hidden_size", c.hidden_size, where, tp);
  get_opt(t, "intermediate_size", c.intermediate_size, where, tp);
  get_opt(t, "num_hidden_layers", c.num_hidden_layers, where, tp);
  get_opt(t, "num_attention_heads", c.num_attention_heads, where, tp);
  get_opt(t, "num_key_value_heads", c.num_key_value_heads, where, tp);
  if (c.num_key_value_heads == 0) c.num_key_value_heads = c.num_attention_heads;
  get_opt(t, "head_dim", c.explicit_head_dim, where, tp);
  get_opt(t, "max_position_embeddings", c.max_position_embeddings, where, tp);
  get_opt(t, "rms_norm_eps", c.rms_norm_eps, where, tp);
  get_opt(t, "rope_theta", c.rope_theta, where, tp);
  read_rope(t, c, where);
  get_opt(t, "tie_word_embeddings", c.tie_word_embeddings, where, tp);
  get_opt(t, "hidden_act", c.hidden_act, where, tp);
  if (type == "llama") {
    bool attention_bias = false, mlp_bias = false;
    get_opt(t, "attention_bias", attention_bias, where, tp);
    get_opt(t, "mlp_bias", mlp_bias, where, tp);
    c.qkv_bias = c.o_bias = attention_bias;
    RESSA_CHECK(!mlp_bias, "[load_config] ", where, ": text_config.mlp_bias = true is not supported");
  }
  if (type == "mistral") {
    // MistralConfig's default window (4096) applies when the key is absent; only null means none.
    const json* w = t.find("sliding_window") != t.end() ? &t.at("sliding_window") : nullptr;
    if (w && w->is_null()) c.sliding_window = 0;
    else get_opt(t, "sliding_window", c.sliding_window, where, tp);
  }
  if (type == "qwen2") {
    bool sliding = false;
    get_opt(t, "use_sliding_window", sliding, where, tp);
    RESSA_CHECK(!sliding, "[load_config] ", where,
                ": text_config.use_sliding_window = true is not supported (sliding-window attention)");
  }
  if (const json* lt = find_opt(t, "layer_types")) {
    if (!lt->is_array()) wrong_type(*lt, "layer_types", "an array of strings", where, tp);
    for (const json& e : *lt)
      RESSA_CHECK(e.is_string() && e.get<std::string>() == "full_attention", "[load_config] ", where,
                  ": text_config.layer_types: only full_attention layers are supported");
  }
  return c;
}

// `type`: as for parse_text (LlavaConfig: clip_vision_model; LlavaOnevisionConfig: siglip_vision_model).
VisionConfig parse_vision(const json& v, std::string type, const std::string& where) {
  const std::string vp = "vision_config.";
  get_opt(v, "model_type", type, where, vp);
  VisionConfig c = vision_defaults(type, where);
  get_opt(v, "hidden_size", c.hidden_size, where, vp);
  get_opt(v, "intermediate_size", c.intermediate_size, where, vp);
  get_opt(v, "num_hidden_layers", c.num_hidden_layers, where, vp);
  get_opt(v, "num_attention_heads", c.num_attention_heads, where, vp);
  get_opt(v, "image_size", c.image_size, where, vp);
  get_opt(v, "patch_size", c.patch_size, where, vp);
  get_opt(v, "num_channels", c.num_channels, where, vp);
  get_opt(v, "layer_norm_eps", c.layer_norm_eps, where, vp);
  get_opt(v, "hidden_act", c.hidden_act, where, vp);
  return c;
}

// The tower a LlavaConfig / LlavaOnevisionConfig builds when config.json has no vision_config.
VisionConfig default_vision_tower(const std::string& model_type, const std::string& where) {
  VisionConfig c;
  if (model_type == "llava") {
    c = vision_defaults("clip_vision_model", where);
    c.hidden_size = 1024;
    c.intermediate_size = 4096;
    c.num_hidden_layers = 24;
    c.num_attention_heads = 16;
    c.image_size = 336;
    c.patch_size = 14;
  } else {
    c = vision_defaults("siglip_vision_model", where);
    c.hidden_size = 1152;
    c.intermediate_size = 4304;
    c.num_hidden_layers = 26;
    c.num_attention_heads = 14;
    c.image_size = 384;
    c.patch_size = 14;
  }
  return c;
}

// Reads an optional object member, or returns an empty object when absent or null.
const json& object_or_empty(const json& j, const char* key, const std::string& where) {
  static const json empty = json::object();
  const json* v = find_opt(j, key);
  if (!v) return empty;
  if (!v->is_object()) wrong_type(*v, key, "an object", where, "");
  return *v;
}
}  // namespace

LlavaConfig parse_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail("[load_config] ", where, ": not valid JSON: ", e.what());
  }
  RESSA_CHECK(j.is_object(), "[load_config] ", where, ": top level must be a JSON object");
  LlavaConfig c;
  get_opt(j, "model_type", c.model_type, where, "");
  RESSA_CHECK(c.model_type == "llava" || c.model_type == "llava_onevision", "[load_config] ", where, ": model_type '",
              c.model_type, "' is not supported (supported: llava, llava_onevision)");
  const bool onevision = c.model_type == "llava_onevision";
  // Each tower: the config class's defaults for its model_type, then config.json's fields.
  const json& v = object_or_empty(j, "vision_config", where);
  c.vision = v.empty() ? default_vision_tower(c.model_type, where) : parse_vision(v, onevision ? "siglip_vision_model" : "clip_vision_model", where);
  const json& t = object_or_empty(j, "text_config", where);
  c.text = t.empty() && onevision ? text_defaults("qwen2", where) : parse_text(t, onevision ? "qwen2" : "llama", where);
  if (c.text.num_key_value_heads == 0) c.text.num_key_value_heads = c.text.num_attention_heads;

  c.image_token_index = onevision ? 151646 : 32000;
  c.vision_feature_layer = onevision ? -1 : -2;
  c.vision_feature_select_strategy = onevision ? "full" : "default";
  c.projector_hidden_act = "gelu";
  get_opt(j, "image_token_index", c.image_token_index, where, "");
  get_opt(j, "image_token_id", c.image_token_index, where, "");  // transformers 5 name
  get_opt(j, "projector_hidden_act", c.projector_hidden_act, where, "");
  if (const json* fl = find_opt(j, "vision_feature_layer"); fl && fl->is_array())
    fail("[load_config] ", where, ": vision_feature_layer is a list (features concatenated from several layers): "
         "not supported (supported: one integer layer index)");
  get_opt(j, "vision_feature_layer", c.vision_feature_layer, where, "");
  get_opt(j, "vision_feature_select_strategy", c.vision_feature_select_strategy, where, "");
  get_opt(j, "multimodal_projector_bias", c.projector_bias, where, "");
  // Tying follows the text config (transformers' get_text_config().tie_word_embeddings); a
  // top-level true counts only where there is no text_config to contradict it.
  bool top_tie = false;
  get_opt(j, "tie_word_embeddings", top_tie, where, "");
  if (top_tie && !c.text.tie_word_embeddings) {
    RESSA_CHECK(t.empty(), "[load_config] ", where,
                ": tie_word_embeddings = true at the top level but false in text_config (ambiguous)");
    c.text.tie_word_embeddings = true;
  }
  get_opt(j, "torch_dtype", c.torch_dtype, where, "");
  get_opt(j, "dtype", c.torch_dtype, where, "");  // transformers 5 name
  RESSA_CHECK(c.torch_dtype == "float32" || c.torch_dtype == "float16" || c.torch_dtype == "bfloat16",
              "[load_config] ", where, ": torch_dtype '", c.torch_dtype,
              "' is not supported (supported: float32, float16, bfloat16)");
  c.source_json = text;
  c.validate(where);
  return c;
}

namespace {
LlavaConfig read_config_files(const std::string& path) {
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
}  // namespace

LlavaConfig resolve_config(const std::string& path) { return read_config_files(path); }

LlavaConfig load_config(const std::string& path) {
  LlavaConfig c = read_config_files(path);
  c.check_runnable(path);
  return c;
}

std::string config_to_json(const LlavaConfig& c) {
  // Start from the file the config was read from, so every field ressa does not own is written
  // back as it was; then set the fields ressa resolves, under the names the source used.
  json j = json::object();
  if (!c.source_json.empty()) {
    try {
      j = json::parse(c.source_json);
    } catch (const std::exception&) {
      j = json::object();
    }
    if (!j.is_object()) j = json::object();
  }
  if (!j.contains("architectures")) j["architectures"] = {"LlavaForConditionalGeneration"};
  j["model_type"] = c.model_type;
  j[j.contains("image_token_id") ? "image_token_id" : "image_token_index"] = c.image_token_index;
  j["projector_hidden_act"] = c.projector_hidden_act;
  j["vision_feature_layer"] = c.vision_feature_layer;
  j["vision_feature_select_strategy"] = c.vision_feature_select_strategy;
  if (!c.projector_bias || j.contains("multimodal_projector_bias")) j["multimodal_projector_bias"] = c.projector_bias;
  j[j.contains("dtype") ? "dtype" : "torch_dtype"] = c.torch_dtype;

  json& v = j["vision_config"];
  if (!v.is_object()) v = json::object();
  v["model_type"] = c.vision.model_type;
  v["hidden_size"] = c.vision.hidden_size;
  v["intermediate_size"] = c.vision.intermediate_size;
  v["num_hidden_layers"] = c.vision.num_hidden_layers;
  v["num_attention_heads"] = c.vision.num_attention_heads;
  v["image_size"] = c.vision.image_size;
  v["patch_size"] = c.vision.patch_size;
  v["num_channels"] = c.vision.num_channels;
  v["layer_norm_eps"] = c.vision.layer_norm_eps;
  v["hidden_act"] = c.vision.hidden_act;

  json& t = j["text_config"];
  if (!t.is_object()) t = json::object();
  t["model_type"] = c.text.model_type;
  t["vocab_size"] = c.text.vocab_size;
  t["hidden_size"] = c.text.hidden_size;
  t["intermediate_size"] = c.text.intermediate_size;
  t["num_hidden_layers"] = c.text.num_hidden_layers;
  t["num_attention_heads"] = c.text.num_attention_heads;
  t["num_key_value_heads"] = c.text.num_key_value_heads;
  t["max_position_embeddings"] = c.text.max_position_embeddings;
  t["rms_norm_eps"] = c.text.rms_norm_eps;
  if (t.contains("rope_parameters") && t["rope_parameters"].is_object())
    t["rope_parameters"]["rope_theta"] = c.text.rope_theta;
  else
    t["rope_theta"] = c.text.rope_theta;
  t["tie_word_embeddings"] = c.text.tie_word_embeddings;
  t["hidden_act"] = c.text.hidden_act;
  if (c.text.explicit_head_dim > 0) t["head_dim"] = c.text.explicit_head_dim;
  if (c.text.model_type == "llama" && (c.text.qkv_bias || t.contains("attention_bias")))
    t["attention_bias"] = c.text.qkv_bias;
  if (c.text.model_type == "mistral")
    t["sliding_window"] = c.text.sliding_window > 0 ? json(c.text.sliding_window) : json(nullptr);
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
