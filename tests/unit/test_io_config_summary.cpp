// Tests for io/config_summary: parameter counts of a resolved config against the published size
// of llava-hf/llava-1.5-7b-hf (7,063,427,072 parameters: CLIP ViT-L/14-336 303,507,456,
// projector 20,979,712, Llama-2-7B with a 32,064-token vocabulary 6,738,939,904, each worked out
// by hand from the architectures), and the resolved-configuration JSON.
#include <gtest/gtest.h>

#include <string>

#include "ressa/io/config.h"
#include "ressa/io/config_summary.h"

using namespace ressa;

namespace {
// llava-hf/llava-1.5-7b-hf's config.json as published: text_config leaves the sizes to
// LlamaConfig's defaults.
const char* kLlava15 = R"({
  "architectures": ["LlavaForConditionalGeneration"], "ignore_index": -100, "image_token_index": 32000,
  "model_type": "llava", "pad_token_id": 32001, "projector_hidden_act": "gelu",
  "text_config": {"_name_or_path": "lmsys/vicuna-7b-v1.5", "architectures": ["LlamaForCausalLM"],
                  "max_position_embeddings": 4096, "model_type": "llama", "rms_norm_eps": 1e-05,
                  "torch_dtype": "float16", "vocab_size": 32064},
  "tie_word_embeddings": false, "torch_dtype": "float16", "transformers_version": "4.36.0.dev0",
  "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096,
                    "model_type": "clip_vision_model", "num_attention_heads": 16, "num_hidden_layers": 24,
                    "patch_size": 14, "projection_dim": 768, "vocab_size": 32000},
  "vision_feature_layer": -2, "vision_feature_select_strategy": "default", "vocab_size": 32064})";
}  // namespace

TEST(ConfigSummary, Llava15ParameterCountsMatchThePublishedModel) {
  const auto c = io::parse_config(kLlava15, "llava-1.5-7b-hf/config.json");
  const auto n = io::parameter_counts(c);
  EXPECT_EQ(n.vision, 303507456);
  EXPECT_EQ(n.projector, 20979712);
  EXPECT_EQ(n.language, 6738939904);
  EXPECT_EQ(n.total(), 7063427072);
}

TEST(ConfigSummary, TiedEmbeddingsAndBiasesCountOnce) {
  auto c = io::parse_config(kLlava15, "x");
  const auto base = io::parameter_counts(c);
  c.text.tie_word_embeddings = true;
  EXPECT_EQ(io::parameter_counts(c).language, base.language - 32064 * 4096);
  c.text.tie_word_embeddings = false;
  c.text.qkv_bias = true;
  EXPECT_EQ(io::parameter_counts(c).language, base.language + 32 * 3 * 4096);
  c.text.qkv_bias = false;
  c.projector_bias = false;
  EXPECT_EQ(io::parameter_counts(c).projector, base.projector - 2 * 4096);
}

TEST(ConfigSummary, ResolvedJsonHasDerivedSizes) {
  const auto j = io::resolved_config_json(io::parse_config(kLlava15, "x"));
  EXPECT_EQ(j["text"]["hidden_size"], 4096);
  EXPECT_EQ(j["text"]["intermediate_size"], 11008);
  EXPECT_EQ(j["text"]["num_hidden_layers"], 32);
  EXPECT_EQ(j["text"]["num_key_value_heads"], 32);
  EXPECT_EQ(j["text"]["head_dim"], 128);
  EXPECT_EQ(j["text"]["vocab_size"], 32064);
  EXPECT_EQ(j["image_tokens"], 576);
  EXPECT_EQ(j["vision_layers_used"], 23);
  EXPECT_EQ(j["torch_dtype"], "float16");
}
