// Tests for ressa::io's reading of real Hugging Face LLaVA config.json files
// (tests/fixtures/hf_configs/<model>/config.json, sources in that folder's README.md): each
// resolves to the sizes transformers builds — the file's fields over the defaults of the tower's
// config class (CLIPVisionConfig, SiglipVisionConfig, LlamaConfig, MistralConfig, Qwen2Config) and
// of LlavaConfig / LlavaOnevisionConfig — unsupported settings are refused with a message naming
// the file, the field and what is supported, transformers-5 spellings are accepted, and
// config_to_json writes every source field back unchanged. Expected values come from the
// transformers configuration classes' documented defaults, not from ressa.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <sstream>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "ressa/io/config.h"

using namespace ressa;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

std::string fixture(const std::string& model) {
  return std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/hf_configs/" + model + "/config.json";
}

json read_json(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return json::parse(ss.str());
}

// Writes `j` as config.json in a fresh directory of its own (no preprocessor_config.json beside
// it) and returns the file's path.
std::string write_config(const json& j, const std::string& name) {
  fs::path dir = fs::path(testing::TempDir()) / ("ressa_io_config_hf_" + name);
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::path p = dir / "config.json";
  std::ofstream(p) << j.dump(2) << "\n";
  return p.string();
}

// resolve_config on `j` must throw std::runtime_error whose message holds the file's path and
// every string in `needles` (the field, the bad value, what is supported).
void expect_refused(const json& j, const std::string& name, std::initializer_list<std::string> needles) {
  const std::string path = write_config(j, name);
  try {
    io::resolve_config(path);
    ADD_FAILURE() << name << ": resolve_config accepted the config";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << name << ": message does not name the file: " << msg;
    for (const std::string& n : needles)
      EXPECT_NE(msg.find(n), std::string::npos) << name << ": message lacks '" << n << "': " << msg;
  }
}

// Every field of `src`, recursively, is in `out` with an equal value (fields ressa adds are fine).
void expect_superset(const json& src, const json& out, const std::string& at) {
  ASSERT_TRUE(out.is_object()) << at << " is not an object in the written config";
  for (auto it = src.begin(); it != src.end(); ++it) {
    const std::string key = at.empty() ? it.key() : at + "." + it.key();
    ASSERT_TRUE(out.contains(it.key())) << "written config lost '" << key << "'";
    if (it->is_object())
      expect_superset(*it, out.at(it.key()), key);
    else
      EXPECT_EQ(out.at(it.key()), *it) << "written config changed '" << key << "'";
  }
}

// The resolved sizes of two configs are the same.
void expect_same_sizes(const io::LlavaConfig& a, const io::LlavaConfig& b) {
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.vision.model_type, b.vision.model_type);
  EXPECT_EQ(a.vision.hidden_size, b.vision.hidden_size);
  EXPECT_EQ(a.vision.intermediate_size, b.vision.intermediate_size);
  EXPECT_EQ(a.vision.num_hidden_layers, b.vision.num_hidden_layers);
  EXPECT_EQ(a.vision.num_attention_heads, b.vision.num_attention_heads);
  EXPECT_EQ(a.vision.image_size, b.vision.image_size);
  EXPECT_EQ(a.vision.patch_size, b.vision.patch_size);
  EXPECT_EQ(a.vision.hidden_act, b.vision.hidden_act);
  EXPECT_DOUBLE_EQ(a.vision.layer_norm_eps, b.vision.layer_norm_eps);
  EXPECT_EQ(a.text.model_type, b.text.model_type);
  EXPECT_EQ(a.text.vocab_size, b.text.vocab_size);
  EXPECT_EQ(a.text.hidden_size, b.text.hidden_size);
  EXPECT_EQ(a.text.intermediate_size, b.text.intermediate_size);
  EXPECT_EQ(a.text.num_hidden_layers, b.text.num_hidden_layers);
  EXPECT_EQ(a.text.num_attention_heads, b.text.num_attention_heads);
  EXPECT_EQ(a.text.num_key_value_heads, b.text.num_key_value_heads);
  EXPECT_EQ(a.text.max_position_embeddings, b.text.max_position_embeddings);
  EXPECT_DOUBLE_EQ(a.text.rms_norm_eps, b.text.rms_norm_eps);
  EXPECT_DOUBLE_EQ(a.text.rope_theta, b.text.rope_theta);
  EXPECT_EQ(a.text.tie_word_embeddings, b.text.tie_word_embeddings);
  EXPECT_EQ(a.text.qkv_bias, b.text.qkv_bias);
  EXPECT_EQ(a.text.o_bias, b.text.o_bias);
  EXPECT_EQ(a.text.sliding_window, b.text.sliding_window);
  EXPECT_EQ(a.text.head_dim(), b.text.head_dim());
  EXPECT_EQ(a.image_token_index, b.image_token_index);
  EXPECT_EQ(a.vision_feature_layer, b.vision_feature_layer);
  EXPECT_EQ(a.vision_feature_select_strategy, b.vision_feature_select_strategy);
  EXPECT_EQ(a.projector_bias, b.projector_bias);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.image_tokens(), b.image_tokens());
  EXPECT_EQ(a.vision_layers_used(), b.vision_layers_used());
}

// CLIP ViT-L/14-336 as llava-1.5 and bakLlava set it; the rest are CLIPVisionConfig defaults.
void expect_clip_l336(const io::VisionConfig& v) {
  EXPECT_EQ(v.model_type, "clip_vision_model");
  EXPECT_FALSE(v.is_siglip());
  EXPECT_EQ(v.hidden_size, 1024);
  EXPECT_EQ(v.intermediate_size, 4096);
  EXPECT_EQ(v.num_hidden_layers, 24);
  EXPECT_EQ(v.num_attention_heads, 16);
  EXPECT_EQ(v.image_size, 336);
  EXPECT_EQ(v.patch_size, 14);
  EXPECT_EQ(v.num_channels, 3);
  EXPECT_EQ(v.hidden_act, "quick_gelu");  // CLIPVisionConfig default
  EXPECT_DOUBLE_EQ(v.layer_norm_eps, 1e-5);
  EXPECT_EQ(v.num_positions(), 577);  // 24x24 patches + class token
}

// SigLIP so400m (26 blocks, the last dropped) as llava-interleave and onevision set it; the rest
// are SiglipVisionConfig defaults.
void expect_siglip_so400m(const io::VisionConfig& v) {
  EXPECT_EQ(v.model_type, "siglip_vision_model");
  EXPECT_TRUE(v.is_siglip());
  EXPECT_EQ(v.hidden_size, 1152);
  EXPECT_EQ(v.intermediate_size, 4304);
  EXPECT_EQ(v.num_hidden_layers, 26);
  EXPECT_EQ(v.num_attention_heads, 16);
  EXPECT_EQ(v.image_size, 384);
  EXPECT_EQ(v.patch_size, 14);
  EXPECT_EQ(v.hidden_act, "gelu_pytorch_tanh");  // SiglipVisionConfig default
  EXPECT_DOUBLE_EQ(v.layer_norm_eps, 1e-6);       // SiglipVisionConfig default
  EXPECT_EQ(v.num_positions(), 729);              // 27x27 patches (384 / 14 drops the remainder), no class token
}

}  // namespace

// ---- the four checkpoints ------------------------------------------------------------------

TEST(HfConfig, Llava15Vicuna7b) {
  const io::LlavaConfig c = io::resolve_config(fixture("llava-1.5-7b-hf"));
  EXPECT_EQ(c.model_type, "llava");
  expect_clip_l336(c.vision);
  const io::TextConfig& t = c.text;
  EXPECT_EQ(t.model_type, "llama");
  EXPECT_EQ(t.vocab_size, 32064);              // file
  EXPECT_EQ(t.hidden_size, 4096);              // LlamaConfig defaults from here ...
  EXPECT_EQ(t.intermediate_size, 11008);
  EXPECT_EQ(t.num_hidden_layers, 32);
  EXPECT_EQ(t.num_attention_heads, 32);
  EXPECT_EQ(t.num_key_value_heads, 32);        // = num_attention_heads
  EXPECT_EQ(t.max_position_embeddings, 4096);  // file
  EXPECT_DOUBLE_EQ(t.rms_norm_eps, 1e-5);      // file
  EXPECT_DOUBLE_EQ(t.rope_theta, 10000.0);
  EXPECT_EQ(t.hidden_act, "silu");
  EXPECT_EQ(t.head_dim(), 128);
  EXPECT_FALSE(t.tie_word_embeddings);
  EXPECT_FALSE(t.qkv_bias);
  EXPECT_FALSE(t.o_bias);
  EXPECT_EQ(t.sliding_window, 0);
  EXPECT_EQ(t.max_sequence_length(), 4096);
  EXPECT_EQ(c.image_token_index, 32000);
  EXPECT_EQ(c.vision_feature_layer, -2);
  EXPECT_EQ(c.vision_feature_select_strategy, "default");
  EXPECT_EQ(c.projector_hidden_act, "gelu");
  EXPECT_TRUE(c.projector_bias);  // LlavaConfig multimodal_projector_bias default
  EXPECT_EQ(c.torch_dtype, "float16");
  EXPECT_EQ(c.image_tokens(), 576);       // 577 less the class token
  EXPECT_EQ(c.vision_layers_used(), 23);  // hidden state -2 = output of block 22
  EXPECT_NO_THROW(io::load_config(fixture("llava-1.5-7b-hf")));
}

TEST(HfConfig, BakLlavaMistral7b) {
  const io::LlavaConfig c = io::resolve_config(fixture("bakLlava-v1-hf"));
  EXPECT_EQ(c.model_type, "llava");
  expect_clip_l336(c.vision);
  const io::TextConfig& t = c.text;
  EXPECT_EQ(t.model_type, "mistral");
  EXPECT_EQ(t.vocab_size, 32064);
  EXPECT_EQ(t.hidden_size, 4096);  // MistralConfig default
  EXPECT_EQ(t.intermediate_size, 14336);
  EXPECT_EQ(t.num_hidden_layers, 32);    // MistralConfig default
  EXPECT_EQ(t.num_attention_heads, 32);  // MistralConfig default
  EXPECT_EQ(t.num_key_value_heads, 8);
  EXPECT_EQ(t.max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(t.rms_norm_eps, 1e-5);
  EXPECT_DOUBLE_EQ(t.rope_theta, 10000.0);  // MistralConfig default
  EXPECT_EQ(t.sliding_window, 4096);
  EXPECT_EQ(t.max_sequence_length(), 4096);
  EXPECT_EQ(t.head_dim(), 128);
  EXPECT_FALSE(t.tie_word_embeddings);
  EXPECT_FALSE(t.qkv_bias);
  EXPECT_FALSE(t.o_bias);
  EXPECT_EQ(c.image_token_index, 32000);
  EXPECT_EQ(c.vision_feature_layer, -2);
  EXPECT_EQ(c.vision_feature_select_strategy, "default");
  EXPECT_EQ(c.image_tokens(), 576);
  EXPECT_EQ(c.vision_layers_used(), 23);
  EXPECT_NO_THROW(io::load_config(fixture("bakLlava-v1-hf")));
}

TEST(HfConfig, LlavaInterleaveQwen05b) {
  const io::LlavaConfig c = io::resolve_config(fixture("llava-interleave-qwen-0.5b-hf"));
  EXPECT_EQ(c.model_type, "llava");
  expect_siglip_so400m(c.vision);
  const io::TextConfig& t = c.text;
  EXPECT_EQ(t.model_type, "qwen2");
  EXPECT_EQ(t.vocab_size, 152000);
  EXPECT_EQ(t.hidden_size, 1024);
  EXPECT_EQ(t.intermediate_size, 2816);
  EXPECT_EQ(t.num_hidden_layers, 24);
  EXPECT_EQ(t.num_attention_heads, 16);
  EXPECT_EQ(t.num_key_value_heads, 16);
  EXPECT_EQ(t.max_position_embeddings, 32768);  // Qwen2Config default (not in the file)
  EXPECT_DOUBLE_EQ(t.rms_norm_eps, 1e-6);       // Qwen2Config default (not in the file)
  EXPECT_DOUBLE_EQ(t.rope_theta, 1e6);
  EXPECT_TRUE(t.tie_word_embeddings);
  EXPECT_TRUE(t.qkv_bias);  // Qwen2 attention: q/k/v bias
  EXPECT_FALSE(t.o_bias);
  EXPECT_EQ(t.sliding_window, 0);  // use_sliding_window false: Qwen2's sliding_window unused
  EXPECT_EQ(t.head_dim(), 64);
  EXPECT_EQ(c.image_token_index, 151646);
  EXPECT_EQ(c.vision_feature_layer, -1);
  EXPECT_EQ(c.vision_feature_select_strategy, "full");
  EXPECT_EQ(c.torch_dtype, "float16");
  EXPECT_EQ(c.image_tokens(), 729);       // every SigLIP token under "full"
  EXPECT_EQ(c.vision_layers_used(), 26);  // -1: all blocks
  EXPECT_NO_THROW(io::load_config(fixture("llava-interleave-qwen-0.5b-hf")));
}

TEST(HfConfig, LlavaOnevisionQwen2_05bResolvesButIsNotRunnable) {
  const std::string path = fixture("llava-onevision-qwen2-0.5b-ov-hf");
  const io::LlavaConfig c = io::resolve_config(path);
  EXPECT_EQ(c.model_type, "llava_onevision");
  expect_siglip_so400m(c.vision);
  const io::TextConfig& t = c.text;
  EXPECT_EQ(t.model_type, "qwen2");
  EXPECT_EQ(t.vocab_size, 152000);
  EXPECT_EQ(t.hidden_size, 896);
  EXPECT_EQ(t.intermediate_size, 4864);
  EXPECT_EQ(t.num_hidden_layers, 24);
  EXPECT_EQ(t.num_attention_heads, 14);
  EXPECT_EQ(t.num_key_value_heads, 2);
  EXPECT_EQ(t.max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(t.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(t.rope_theta, 1e6);
  EXPECT_TRUE(t.tie_word_embeddings);
  EXPECT_TRUE(t.qkv_bias);
  EXPECT_EQ(t.head_dim(), 64);
  EXPECT_EQ(c.image_token_index, 151646);
  EXPECT_EQ(c.vision_feature_layer, -1);
  EXPECT_EQ(c.vision_feature_select_strategy, "full");
  EXPECT_EQ(c.image_tokens(), 729);
  EXPECT_EQ(c.vision_layers_used(), 26);

  try {
    io::load_config(path);
    ADD_FAILURE() << "load_config accepted llava_onevision";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("llava_onevision"), std::string::npos) << msg;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find("runnable: llava"), std::string::npos) << msg;
  }
}

// ---- class defaults for absent fields ------------------------------------------------------

TEST(HfConfig, AbsentTowerFieldsTakeTheConfigClassDefaults) {
  // CLIPVisionConfig() and LlamaConfig() (vocab given so image token 32000 is inside it).
  json j = {{"model_type", "llava"},
            {"vision_config", {{"model_type", "clip_vision_model"}}},
            {"text_config", {{"model_type", "llama"}, {"vocab_size", 32064}}}};
  io::LlavaConfig c = io::resolve_config(write_config(j, "defaults_clip_llama"));
  EXPECT_EQ(c.vision.hidden_size, 768);
  EXPECT_EQ(c.vision.intermediate_size, 3072);
  EXPECT_EQ(c.vision.num_hidden_layers, 12);
  EXPECT_EQ(c.vision.num_attention_heads, 12);
  EXPECT_EQ(c.vision.image_size, 224);
  EXPECT_EQ(c.vision.patch_size, 32);
  EXPECT_EQ(c.vision.hidden_act, "quick_gelu");
  EXPECT_DOUBLE_EQ(c.vision.layer_norm_eps, 1e-5);
  EXPECT_EQ(c.text.hidden_size, 4096);
  EXPECT_EQ(c.text.intermediate_size, 11008);
  EXPECT_EQ(c.text.num_hidden_layers, 32);
  EXPECT_EQ(c.text.num_attention_heads, 32);
  EXPECT_EQ(c.text.num_key_value_heads, 32);
  EXPECT_EQ(c.text.max_position_embeddings, 2048);
  EXPECT_DOUBLE_EQ(c.text.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.text.rope_theta, 10000.0);
  EXPECT_FALSE(c.text.tie_word_embeddings);
  EXPECT_EQ(c.image_token_index, 32000);  // LlavaConfig defaults
  EXPECT_EQ(c.vision_feature_layer, -2);
  EXPECT_EQ(c.vision_feature_select_strategy, "default");
  EXPECT_TRUE(c.projector_bias);
  EXPECT_EQ(c.image_tokens(), 49);  // (224/32)^2 + CLS - CLS

  // SiglipVisionConfig() and MistralConfig().
  j = {{"model_type", "llava"},
       {"vision_config", {{"model_type", "siglip_vision_model"}}},
       {"text_config", {{"model_type", "mistral"}, {"vocab_size", 32064}}}};
  c = io::resolve_config(write_config(j, "defaults_siglip_mistral"));
  EXPECT_EQ(c.vision.hidden_size, 768);
  EXPECT_EQ(c.vision.intermediate_size, 3072);
  EXPECT_EQ(c.vision.num_hidden_layers, 12);
  EXPECT_EQ(c.vision.num_attention_heads, 12);
  EXPECT_EQ(c.vision.image_size, 224);
  EXPECT_EQ(c.vision.patch_size, 16);
  EXPECT_EQ(c.vision.hidden_act, "gelu_pytorch_tanh");
  EXPECT_DOUBLE_EQ(c.vision.layer_norm_eps, 1e-6);
  EXPECT_EQ(c.text.hidden_size, 4096);
  EXPECT_EQ(c.text.intermediate_size, 14336);
  EXPECT_EQ(c.text.num_hidden_layers, 32);
  EXPECT_EQ(c.text.num_attention_heads, 32);
  EXPECT_EQ(c.text.num_key_value_heads, 8);
  EXPECT_EQ(c.text.max_position_embeddings, 131072);
  EXPECT_EQ(c.text.sliding_window, 4096);  // MistralConfig default; only an explicit null means none
  EXPECT_DOUBLE_EQ(c.text.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.text.rope_theta, 10000.0);

  // An explicit null sliding_window: full attention.
  j["text_config"]["sliding_window"] = nullptr;
  c = io::resolve_config(write_config(j, "mistral_null_window"));
  EXPECT_EQ(c.text.sliding_window, 0);
  EXPECT_EQ(c.text.max_sequence_length(), 131072);

  // Qwen2Config().
  j = {{"model_type", "llava"}, {"text_config", {{"model_type", "qwen2"}}}};
  c = io::resolve_config(write_config(j, "defaults_qwen2"));
  EXPECT_EQ(c.text.vocab_size, 151936);
  EXPECT_EQ(c.text.hidden_size, 4096);
  EXPECT_EQ(c.text.intermediate_size, 22016);
  EXPECT_EQ(c.text.num_hidden_layers, 32);
  EXPECT_EQ(c.text.num_attention_heads, 32);
  EXPECT_EQ(c.text.num_key_value_heads, 32);
  EXPECT_EQ(c.text.max_position_embeddings, 32768);
  EXPECT_DOUBLE_EQ(c.text.rms_norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.text.rope_theta, 10000.0);
  EXPECT_TRUE(c.text.qkv_bias);
  EXPECT_FALSE(c.text.o_bias);
  // LlavaConfig's default vision tower: CLIP ViT-L/14-336.
  expect_clip_l336(c.vision);
}

TEST(HfConfig, OnevisionAbsentFieldsTakeLlavaOnevisionConfigDefaults) {
  // LlavaOnevisionConfig: top-level defaults image_token_index 151646, vision_feature_layer -1,
  // strategy "full"; a text_config without model_type is a Qwen2Config and a vision_config without
  // model_type a SiglipVisionConfig (transformers: text_config.get("model_type", "qwen2"),
  // vision_config.get("model_type", "siglip_vision_model")).
  json j = {{"model_type", "llava_onevision"},
            {"vision_config", {{"hidden_size", 1152}, {"intermediate_size", 4304}, {"num_hidden_layers", 26},
                               {"num_attention_heads", 16}, {"image_size", 384}, {"patch_size", 14}}},
            {"text_config", {{"hidden_size", 896}, {"num_attention_heads", 14}, {"num_key_value_heads", 2}}}};
  const io::LlavaConfig c = io::resolve_config(write_config(j, "onevision_untyped_towers"));
  expect_siglip_so400m(c.vision);
  EXPECT_EQ(c.text.model_type, "qwen2");
  EXPECT_EQ(c.text.vocab_size, 151936);
  EXPECT_EQ(c.text.intermediate_size, 22016);
  EXPECT_EQ(c.text.num_hidden_layers, 32);
  EXPECT_EQ(c.text.max_position_embeddings, 32768);
  EXPECT_TRUE(c.text.qkv_bias);
  EXPECT_EQ(c.image_token_index, 151646);
  EXPECT_EQ(c.vision_feature_layer, -1);
  EXPECT_EQ(c.vision_feature_select_strategy, "full");
}

TEST(HfConfig, OnevisionWithoutTowersIsRefusedLikeTransformersBuildsIt) {
  // LlavaOnevisionConfig's default vision tower has hidden_size 1152 and 14 heads, which
  // SiglipAttention cannot split (1152 % 14 != 0): transformers cannot build it either.
  expect_refused(json{{"model_type", "llava_onevision"}}, "onevision_bare",
                 {"vision_config.hidden_size", "num_attention_heads 14"});
}

// ---- refused settings ----------------------------------------------------------------------

TEST(HfConfigErrors, UnknownTextModelType) {
  json j = read_json(fixture("llava-1.5-7b-hf"));
  j["text_config"]["model_type"] = "gemma";
  expect_refused(j, "text_gemma", {"text_config.model_type", "gemma", "supported", "llama, mistral, qwen2"});
}

TEST(HfConfigErrors, UnknownVisionModelType) {
  json j = read_json(fixture("llava-1.5-7b-hf"));
  j["vision_config"]["model_type"] = "siglip2_vision_model";
  expect_refused(j, "vision_siglip2",
                 {"vision_config.model_type", "siglip2_vision_model", "supported", "clip_vision_model, siglip_vision_model"});
}

TEST(HfConfigErrors, LinearRopeScaling) {
  json j = read_json(fixture("llava-1.5-7b-hf"));
  j["text_config"]["rope_scaling"] = {{"type", "linear"}, {"factor", 2}};
  expect_refused(j, "rope_linear", {"text_config.rope_scaling", "linear", "supported", "default"});
  // The transformers-5 spelling of the same.
  j = read_json(fixture("llava-1.5-7b-hf"));
  j["text_config"]["rope_parameters"] = {{"rope_type", "linear"}, {"factor", 2}, {"rope_theta", 10000.0}};
  expect_refused(j, "rope_parameters_linear", {"text_config.rope_parameters", "linear", "supported", "default"});
}

TEST(HfConfigErrors, ListValuedVisionFeatureLayer) {
  json j = read_json(fixture("llava-1.5-7b-hf"));
  j["vision_feature_layer"] = {-2, -5, -8};
  expect_refused(j, "feature_layer_list", {"vision_feature_layer", "list", "supported"});
}

TEST(HfConfigErrors, ReluTextActivation) {
  json j = read_json(fixture("llava-1.5-7b-hf"));
  j["text_config"]["hidden_act"] = "relu";
  expect_refused(j, "hidden_act_relu", {"text_config.hidden_act", "relu", "supported", "silu"});
}

TEST(HfConfigErrors, LlamaMlpBias) {
  json j = read_json(fixture("llava-1.5-7b-hf"));
  j["text_config"]["mlp_bias"] = true;
  expect_refused(j, "mlp_bias", {"text_config.mlp_bias", "supported"});
}

TEST(HfConfigErrors, Qwen2SlidingWindowAttention) {
  json j = read_json(fixture("llava-interleave-qwen-0.5b-hf"));
  j["text_config"]["use_sliding_window"] = true;
  expect_refused(j, "qwen2_sliding", {"text_config.use_sliding_window", "supported"});
}

// ---- transformers 5 spellings --------------------------------------------------------------

TEST(HfConfig, TransformersFiveSpellingsAccepted) {
  json j = read_json(fixture("llava-1.5-7b-hf"));
  j.erase("image_token_index");
  j["image_token_id"] = 32000;
  j.erase("torch_dtype");
  j["dtype"] = "bfloat16";
  j["text_config"]["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 500000}};
  const std::string path = write_config(j, "transformers5");
  const io::LlavaConfig c = io::resolve_config(path);
  EXPECT_EQ(c.image_token_index, 32000);
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_DOUBLE_EQ(c.text.rope_theta, 500000.0);
  EXPECT_EQ(c.text.hidden_size, 4096);

  // Written back under the names the source used, not the transformers-4 ones.
  const json out = json::parse(io::config_to_json(c));
  EXPECT_EQ(out.at("image_token_id"), 32000);
  EXPECT_FALSE(out.contains("image_token_index"));
  EXPECT_EQ(out.at("dtype"), "bfloat16");
  EXPECT_FALSE(out.contains("torch_dtype"));
  EXPECT_EQ(out.at("text_config").at("rope_parameters").at("rope_theta"), 500000);
  EXPECT_EQ(out.at("text_config").at("rope_parameters").at("rope_type"), "default");
  EXPECT_FALSE(out.at("text_config").contains("rope_theta"));
  expect_same_sizes(io::parse_config(out.dump(), "rewritten"), c);
}

// ---- write-back ----------------------------------------------------------------------------

TEST(HfConfig, WriteBackKeepsEverySourceField) {
  for (const char* model : {"llava-1.5-7b-hf", "bakLlava-v1-hf", "llava-interleave-qwen-0.5b-hf",
                            "llava-onevision-qwen2-0.5b-ov-hf"}) {
    SCOPED_TRACE(model);
    const json src = read_json(fixture(model));
    const io::LlavaConfig c = io::resolve_config(fixture(model));
    const std::string text = io::config_to_json(c);
    const json out = json::parse(text);
    expect_superset(src, out, "");
    expect_same_sizes(io::parse_config(text, std::string(model) + " rewritten"), c);
  }
  // The fields named in docs for llava-1.5, spelled out.
  const json out = json::parse(io::config_to_json(io::resolve_config(fixture("llava-1.5-7b-hf"))));
  EXPECT_EQ(out.at("ignore_index"), -100);
  EXPECT_EQ(out.at("pad_token_id"), 32001);
  EXPECT_EQ(out.at("vocab_size"), 32064);
  EXPECT_EQ(out.at("transformers_version"), "4.36.0.dev0");
  EXPECT_EQ(out.at("tie_word_embeddings"), false);
  EXPECT_EQ(out.at("architectures"), json::array({"LlavaForConditionalGeneration"}));
  EXPECT_EQ(out.at("text_config").at("_name_or_path"), "lmsys/vicuna-7b-v1.5");
  EXPECT_EQ(out.at("text_config").at("architectures"), json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(out.at("text_config").at("torch_dtype"), "float16");
  EXPECT_EQ(out.at("vision_config").at("projection_dim"), 768);
  EXPECT_EQ(out.at("vision_config").at("vocab_size"), 32000);
}
