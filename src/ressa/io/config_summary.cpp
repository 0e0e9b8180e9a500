// Parameter counts and the resolved-configuration report of a LlavaConfig.
#include "ressa/io/config_summary.h"

namespace ressa::io {

ParameterCounts parameter_counts(const LlavaConfig& c) {
  ParameterCounts n;
  const auto& v = c.vision;
  const int64_t D = v.hidden_size, I = v.intermediate_size;
  const int64_t attn = 4 * (D * D + D), mlp = D * I + I + I * D + D, norms = 2 * 2 * D;
  n.vision = v.num_hidden_layers * (attn + mlp + norms);
  n.vision += D * v.num_channels * v.patch_size * v.patch_size + (v.is_siglip() ? D : 0);  // patch conv
  n.vision += v.num_positions() * D;                                                     // positions
  if (!v.is_siglip()) n.vision += D + 2 * D;                                             // class token, pre-LN
  n.vision += 2 * D;                                                                     // post-LN

  const auto& t = c.text;
  const int64_t H = t.hidden_size, q = t.num_attention_heads * t.head_dim(), kv = t.num_key_value_heads * t.head_dim();
  n.projector = D * H + H * H + (c.projector_bias ? 2 * H : 0);
  const int64_t layer = H * q + 2 * H * kv + q * H + (t.qkv_bias ? q + 2 * kv : 0) + (t.o_bias ? H : 0) +
                        3 * H * t.intermediate_size + 2 * H;
  n.language = t.vocab_size * H + t.num_hidden_layers * layer + H + (t.tie_word_embeddings ? 0 : t.vocab_size * H);
  return n;
}

nlohmann::json resolved_config_json(const LlavaConfig& c) {
  const auto& v = c.vision;
  const auto& t = c.text;
  return {
      {"model_type", c.model_type},
      {"vision",
       {{"model_type", v.model_type},
        {"hidden_size", v.hidden_size},
        {"intermediate_size", v.intermediate_size},
        {"num_hidden_layers", v.num_hidden_layers},
        {"num_attention_heads", v.num_attention_heads},
        {"head_dim", v.hidden_size / v.num_attention_heads},
        {"image_size", v.image_size},
        {"patch_size", v.patch_size},
        {"num_patches", v.num_patches()},
        {"hidden_act", v.hidden_act},
        {"layer_norm_eps", v.layer_norm_eps}}},
      {"text",
       {{"model_type", t.model_type},
        {"vocab_size", t.vocab_size},
        {"hidden_size", t.hidden_size},
        {"intermediate_size", t.intermediate_size},
        {"num_hidden_layers", t.num_hidden_layers},
        {"num_attention_heads", t.num_attention_heads},
        {"num_key_value_heads", t.num_key_value_heads},
        {"head_dim", t.head_dim()},
        {"max_position_embeddings", t.max_position_embeddings},
        {"max_sequence_length", t.max_sequence_length()},
        {"rms_norm_eps", t.rms_norm_eps},
        {"rope_theta", t.rope_theta},
        {"qkv_bias", t.qkv_bias},
        {"o_bias", t.o_bias},
        {"tie_word_embeddings", t.tie_word_embeddings},
        {"hidden_act", t.hidden_act}}},
      {"image_token_index", c.image_token_index},
      {"image_tokens", c.image_tokens()},
      {"vision_feature_layer", c.vision_feature_layer},
      {"vision_layers_used", c.vision_layers_used()},
      {"vision_feature_select_strategy", c.vision_feature_select_strategy},
      {"projector_hidden_act", c.projector_hidden_act},
      {"projector_bias", c.projector_bias},
      {"torch_dtype", c.torch_dtype},
      {"image_mean", c.image_mean},
      {"image_std", c.image_std},
  };
}

}  // namespace ressa::io
