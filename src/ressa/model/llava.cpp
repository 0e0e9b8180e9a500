// LLaVA forward pass: CLIP or SigLIP vision tower, GELU MLP projector, Llama-family decoder (HF
// names and math).
#include "ressa/model/llava.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "ressa/core/error.h"
#include "ressa/model/activation_checkpoint.h"

namespace F = torch::nn::functional;

namespace ressa::model {
namespace {
// q [B,H,Tq,hd], k/v [B,H,Tk,hd], bias [B or 1,1,Tq,Tk] or undefined -> [B,H,Tq,hd]
torch::Tensor attention_scores(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                               const torch::Tensor& bias) {
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * (1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  if (bias.defined()) scores = scores + bias;
  return torch::matmul(torch::softmax(scores, -1), v);
}

// Bytes of the [.., H, Tq, Tk] scores one attention call may hold: a whole calibration batch of
// 16 LLaVA sequences (32 heads, ~620 tokens) would be 0.8 GB per temporary, three of them alive
// at once. Above it the batch is split by sequence, so no [B, H, T, T] tensor of the whole batch
// exists (docs/architecture.md "Memory when pruning"); each sequence's arithmetic is unchanged.
constexpr int64_t kScoreBytes = 64ll << 20;

torch::Tensor attention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                        const torch::Tensor& bias) {
  const int64_t B = q.size(0);
  const int64_t per_seq = q.size(1) * q.size(2) * k.size(2) * static_cast<int64_t>(q.element_size());
  const int64_t chunk = std::max<int64_t>(1, kScoreBytes / std::max<int64_t>(1, per_seq));
  if (B <= chunk) return attention_scores(q, k, v, bias);
  std::vector<torch::Tensor> out;
  for (int64_t b = 0; b < B; b += chunk) {
    const int64_t e = std::min(B, b + chunk);
    auto bb = bias.defined() && bias.size(0) == B ? bias.slice(0, b, e) : bias;
    out.push_back(attention_scores(q.slice(0, b, e), k.slice(0, b, e), v.slice(0, b, e), bb));
  }
  return torch::cat(out, 0);
}

torch::Tensor rotate_half(const torch::Tensor& x) {
  const int64_t h = x.size(-1) / 2;
  return torch::cat({-x.slice(-1, h), x.slice(-1, 0, h)}, -1);
}

torch::nn::LayerNorm layer_norm(int64_t d, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(eps));
}
}  // namespace

// ---- vision --------------------------------------------------------------------------------
ClipAttentionImpl::ClipAttentionImpl(const io::VisionConfig& c) : heads(c.num_attention_heads) {
  const int64_t d = c.hidden_size;
  k_proj = register_module("k_proj", Linear(d, d, true));
  v_proj = register_module("v_proj", Linear(d, d, true));
  q_proj = register_module("q_proj", Linear(d, d, true));
  out_proj = register_module("out_proj", Linear(d, d, true));
}

torch::Tensor ClipAttentionImpl::forward(const torch::Tensor& x) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), hd = D / heads;
  auto split = [&](const torch::Tensor& t) { return t.view({B, T, heads, hd}).transpose(1, 2); };
  auto o = attention(split(q_proj(x)), split(k_proj(x)), split(v_proj(x)), torch::Tensor());
  return out_proj(o.transpose(1, 2).reshape({B, T, D}));
}

ClipMlpImpl::ClipMlpImpl(const io::VisionConfig& c) : hidden_act(c.hidden_act) {
  fc1 = register_module("fc1", Linear(c.hidden_size, c.intermediate_size, true));
  fc2 = register_module("fc2", Linear(c.intermediate_size, c.hidden_size, true));
}

torch::Tensor ClipMlpImpl::forward(const torch::Tensor& x) {
  auto h = fc1(x);
  if (hidden_act == "quick_gelu")
    h = h * torch::sigmoid(1.702 * h);
  else
    h = F::gelu(h, F::GELUFuncOptions().approximate(hidden_act == "gelu_pytorch_tanh" ? "tanh" : "none"));
  return fc2(h);
}

ClipLayerImpl::ClipLayerImpl(const io::VisionConfig& c) {
  self_attn = register_module("self_attn", ClipAttention(c));
  layer_norm1 = register_module("layer_norm1", layer_norm(c.hidden_size, c.layer_norm_eps));
  mlp = register_module("mlp", ClipMlp(c));
  layer_norm2 = register_module("layer_norm2", layer_norm(c.hidden_size, c.layer_norm_eps));
}

torch::Tensor ClipLayerImpl::forward(const torch::Tensor& x) {
  auto h = x + self_attn(layer_norm1(x));
  return h + mlp(layer_norm2(h));
}

ClipEmbeddingsImpl::ClipEmbeddingsImpl(const io::VisionConfig& c) {
  if (!c.is_siglip()) class_embedding = register_parameter("class_embedding", torch::randn({c.hidden_size}) * 0.02);
  patch_embedding = register_module(
      "patch_embedding", torch::nn::Conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size)
                                               .stride(c.patch_size)
                                               .bias(c.is_siglip())));
  position_embedding = register_module("position_embedding", torch::nn::Embedding(c.num_positions(), c.hidden_size));
  // Initialised with 2-D sine-cosine positions (as in MAE) rather than N(0, 0.02), so that a
  // model trained from scratch sees the patch grid's layout from the first step (HF's init makes
  // the position signal ~25x weaker than the patch content). Still a learned parameter;
  // checkpoints load over it. (Measured effect on ShapesVQA: small; docs/benchmarks.md.)
  torch::NoGradGuard ng;
  const auto table = sincos_2d_positions(c.patches_per_side(), c.hidden_size);  // row 0: a class token
  position_embedding->weight.copy_(c.is_siglip() ? table.narrow(0, 1, c.num_patches()) : table);
}

torch::Tensor sincos_2d_positions(int64_t grid, int64_t dim) {
  auto out = torch::zeros({grid * grid + 1, dim});  // row 0: the class token (zeros)
  const int64_t quarter = dim / 4;
  if (quarter == 0) return out;
  auto omega = torch::pow(10000.0, -torch::arange(quarter, torch::kFloat) / static_cast<double>(quarter));
  auto pos = torch::arange(grid, torch::kFloat);
  auto ang = torch::outer(pos, omega);                             // [grid, quarter]
  auto enc = torch::cat({torch::sin(ang), torch::cos(ang)}, 1);   // [grid, 2*quarter]
  auto ys = enc.unsqueeze(1).expand({grid, grid, 2 * quarter});    // row index -> first half
  auto xs = enc.unsqueeze(0).expand({grid, grid, 2 * quarter});    // column index -> second half
  auto grid_enc = torch::cat({ys, xs}, 2).reshape({grid * grid, 4 * quarter});
  out.narrow(0, 1, grid * grid).narrow(1, 0, 4 * quarter).copy_(grid_enc);
  return out;
}

torch::Tensor ClipEmbeddingsImpl::forward(const torch::Tensor& pixels) {
  const int64_t B = pixels.size(0);
  auto x = patch_embedding(pixels).flatten(2).transpose(1, 2);  // [B, P, D]
  if (class_embedding.defined()) {
    auto cls = class_embedding.view({1, 1, -1}).expand({B, 1, class_embedding.size(0)});
    x = torch::cat({cls, x}, 1);
  }
  return x + position_embedding->weight.unsqueeze(0);
}

ClipEncoderImpl::ClipEncoderImpl(const io::VisionConfig& c) {
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(ClipLayer(c));
  register_module("layers", layers);
}

ClipVisionTransformerImpl::ClipVisionTransformerImpl(const io::VisionConfig& c) {
  embeddings = register_module("embeddings", ClipEmbeddings(c));
  if (!c.is_siglip()) pre_layrnorm = register_module("pre_layrnorm", layer_norm(c.hidden_size, c.layer_norm_eps));
  encoder = register_module("encoder", ClipEncoder(c));
  post_layernorm = register_module("post_layernorm", layer_norm(c.hidden_size, c.layer_norm_eps));
  for (auto& m : *encoder->layers) blocks.push_back(ClipLayer(std::dynamic_pointer_cast<ClipLayerImpl>(m)));
}

torch::Tensor ClipVisionTransformerImpl::embed(const torch::Tensor& pixels) {
  auto x = embeddings(pixels);
  return pre_layrnorm ? pre_layrnorm(x) : x;
}

ClipVisionModelImpl::ClipVisionModelImpl(const io::VisionConfig& c) {
  vision_model = register_module("vision_model", ClipVisionTransformer(c));
}

// ---- projector -----------------------------------------------------------------------------
ProjectorImpl::ProjectorImpl(int64_t dv, int64_t dt, bool bias) {
  linear_1 = register_module("linear_1", Linear(dv, dt, bias));
  linear_2 = register_module("linear_2", Linear(dt, dt, bias));
}

torch::Tensor ProjectorImpl::forward(const torch::Tensor& x) { return linear_2(F::gelu(linear_1(x))); }

// ---- language model ------------------------------------------------------------------------
RmsNormImpl::RmsNormImpl(int64_t dim, double eps_) : eps(eps_) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  auto var = x.pow(2).mean(-1, true);
  return weight * (x * torch::rsqrt(var + eps));
}

LlamaAttentionImpl::LlamaAttentionImpl(const io::TextConfig& c)
    : heads(c.num_attention_heads), kv_heads(c.num_key_value_heads), head_dim(c.head_dim()) {
  const int64_t d = c.hidden_size;
  q_proj = register_module("q_proj", Linear(d, heads * head_dim, c.qkv_bias));
  k_proj = register_module("k_proj", Linear(d, kv_heads * head_dim, c.qkv_bias));
  v_proj = register_module("v_proj", Linear(d, kv_heads * head_dim, c.qkv_bias));
  o_proj = register_module("o_proj", Linear(heads * head_dim, d, c.o_bias));
}

torch::Tensor LlamaAttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                          const torch::Tensor& bias, KvLayerCache* cache) {
  const int64_t B = x.size(0), T = x.size(1);
  auto q = q_proj(x).view({B, T, heads, head_dim}).transpose(1, 2);
  auto k = k_proj(x).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  auto v = v_proj(x).view({B, T, kv_heads, head_dim}).transpose(1, 2);
  auto c = cos.unsqueeze(1), s = sin.unsqueeze(1);
  q = q * c + rotate_half(q) * s;
  k = k * c + rotate_half(k) * s;
  if (cache) {
    if (cache->k.defined()) {
      k = torch::cat({cache->k, k}, 2);
      v = torch::cat({cache->v, v}, 2);
    }
    cache->k = k;
    cache->v = v;
  }
  if (kv_heads != heads) {
    k = k.repeat_interleave(heads / kv_heads, 1);
    v = v.repeat_interleave(heads / kv_heads, 1);
  }
  auto o = attention(q, k, v, bias);
  return o_proj(o.transpose(1, 2).reshape({B, T, heads * head_dim}));
}

LlamaMlpImpl::LlamaMlpImpl(const io::TextConfig& c) {
  gate_proj = register_module("gate_proj", Linear(c.hidden_size, c.intermediate_size, false));
  up_proj = register_module("up_proj", Linear(c.hidden_size, c.intermediate_size, false));
  down_proj = register_module("down_proj", Linear(c.intermediate_size, c.hidden_size, false));
}

torch::Tensor LlamaMlpImpl::forward(const torch::Tensor& x) { return down_proj(F::silu(gate_proj(x)) * up_proj(x)); }

LlamaLayerImpl::LlamaLayerImpl(const io::TextConfig& c) {
  self_attn = register_module("self_attn", LlamaAttention(c));
  mlp = register_module("mlp", LlamaMlp(c));
  input_layernorm = register_module("input_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  post_attention_layernorm = register_module("post_attention_layernorm", RmsNorm(c.hidden_size, c.rms_norm_eps));
}

torch::Tensor LlamaLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                      const torch::Tensor& bias, KvLayerCache* cache) {
  auto h = x + self_attn(input_layernorm(x), cos, sin, bias, cache);
  return h + mlp(post_attention_layernorm(h));
}

LlamaModelImpl::LlamaModelImpl(const io::TextConfig& c) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(c.vocab_size, c.hidden_size));
  {
    torch::NoGradGuard ng;
    embed_tokens->weight.normal_(0, 0.02);
  }
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(LlamaLayer(c));
  register_module("layers", layers);
  norm = register_module("norm", RmsNorm(c.hidden_size, c.rms_norm_eps));
  for (auto& m : *layers) blocks.push_back(LlamaLayer(std::dynamic_pointer_cast<LlamaLayerImpl>(m)));
}

LlamaForCausalLmImpl::LlamaForCausalLmImpl(const io::TextConfig& c) {
  model = register_module("model", LlamaModel(c));
  lm_head = register_module("lm_head", Linear(c.hidden_size, c.vocab_size, false));
  if (c.tie_word_embeddings) {
    torch::NoGradGuard ng;
    lm_head->weight.set_(model->embed_tokens->weight);  // one storage: loading either loads both
    tied = true;
  }
}

std::pair<torch::Tensor, torch::Tensor> rope_tables(const torch::Tensor& positions, int64_t head_dim, double theta) {
  auto idx = torch::arange(0, head_dim, 2, torch::TensorOptions().dtype(torch::kFloat64).device(positions.device()));
  auto inv_freq = torch::pow(theta, -idx / static_cast<double>(head_dim)).to(torch::kFloat32);  // [hd/2]
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq;                         // [B,T,hd/2]
  auto emb = torch::cat({freqs, freqs}, -1);
  return {emb.cos(), emb.sin()};
}

// ---- VLM -----------------------------------------------------------------------------------
LlavaImpl::LlavaImpl(const io::LlavaConfig& c) : config(c) {
  c.validate("LlavaConfig");
  vision_tower = register_module("vision_tower", ClipVisionModel(c.vision));
  multi_modal_projector =
      register_module("multi_modal_projector", Projector(c.vision.hidden_size, c.text.hidden_size, c.projector_bias));
  language_model = register_module("language_model", LlamaForCausalLm(c.text));
}

std::vector<torch::Tensor> LlavaImpl::vision_hidden_states(const torch::Tensor& pixels) {
  auto& vm = vision_tower->vision_model;
  RESSA_CHECK_ARG(pixels.dim() == 4 && pixels.size(1) == 3 && pixels.size(2) == config.vision.image_size &&
                      pixels.size(3) == config.vision.image_size,
                  "[Llava::image_features] pixels must be [B,3,", config.vision.image_size, ",",
                  config.vision.image_size, "], got ", pixels.sizes());
  std::vector<torch::Tensor> hs;
  auto x = vm->embed(pixels);
  hs.push_back(x);
  for (auto& blk : vm->blocks) {
    x = blk(x);
    hs.push_back(x);
  }
  return hs;
}

torch::Tensor LlavaImpl::image_features(const torch::Tensor& pixels) {
  auto& vm = vision_tower->vision_model;
  const int64_t L = static_cast<int64_t>(vm->blocks.size());
  const int64_t layer = config.vision_feature_layer < 0 ? L + 1 + config.vision_feature_layer : config.vision_feature_layer;
  // Run only the blocks the selected hidden state needs.
  auto x = vm->embed(pixels);
  for (int64_t i = 0; i < layer; ++i) {
    auto blk = vm->blocks[i];
    x = checkpointing_ ? checkpointed([blk](const torch::Tensor& h) mutable { return blk(h); }, x) : blk(x);
  }
  if (config.vision_feature_select_strategy == "default") x = x.slice(1, 1);
  return multi_modal_projector(x);
}

torch::Tensor LlavaImpl::embed(const torch::Tensor& ids, const torch::Tensor& feats) {
  auto is_img = ids.eq(config.image_token_index);
  // An image token id may lie past the vocabulary (transformers allows it): those positions are
  // overwritten by image features, so they look up any valid row first.
  auto emb = language_model->model->embed_tokens(
      config.image_token_index >= config.text.vocab_size ? ids.masked_fill(is_img, 0) : ids);
  const int64_t n_img = is_img.sum().item<int64_t>();
  RESSA_CHECK_ARG(n_img == feats.size(0) * feats.size(1), "[Llava::embed] the input has ", n_img,
                  " <image> tokens but the images give ", feats.size(0) * feats.size(1), " features (",
                  feats.size(0), " images x ", feats.size(1), ")");
  return emb.masked_scatter(is_img.unsqueeze(-1), feats.to(emb.dtype()));
}

DecoderInputs decoder_inputs(const torch::Tensor& mask, int64_t Tn, const io::TextConfig& c,
                             torch::ScalarType dtype) {
  RESSA_CHECK_ARG(mask.dim() == 2 && Tn >= 1 && Tn <= mask.size(1), "[decode] mask ", mask.sizes(),
                  " cannot hold ", Tn, " new positions");
  const int64_t B = mask.size(0), T = mask.size(1), Tp = T - Tn;
  auto m = mask.to(torch::kInt64);
  auto positions = (m.cumsum(1) - 1).clamp_min(0).slice(1, Tp);
  DecoderInputs in;
  std::tie(in.cos, in.sin) = rope_tables(positions, c.head_dim(), c.rope_theta);
  auto opts = torch::TensorOptions().dtype(torch::kBool).device(mask.device());
  auto allowed = torch::ones({Tn, T}, opts).tril(Tp).unsqueeze(0) & m.to(torch::kBool).view({B, 1, T});
  in.bias = torch::zeros({B, 1, Tn, T}, opts.dtype(dtype)).masked_fill(allowed.logical_not().unsqueeze(1), -1e9);
  return in;
}

torch::Tensor LlavaImpl::decode(const torch::Tensor& embeds, const torch::Tensor& attn_mask) {
  const auto in = decoder_inputs(attn_mask, embeds.size(1), config.text, embeds.scalar_type());
  auto x = embeds;
  for (auto& blk : language_model->model->blocks) {
    // The recomputation in backward may outlive this call: the block and its inputs by value.
    auto run = [blk, in](const torch::Tensor& h) mutable { return blk(h, in.cos, in.sin, in.bias); };
    x = checkpointing_ ? checkpointed(run, x) : run(x);
  }
  return language_model->lm_head(language_model->model->norm(x));
}

torch::Tensor LlavaImpl::decode(const torch::Tensor& embeds, const torch::Tensor& new_mask, KvCache& cache,
                                bool last_only) {
  const int64_t B = embeds.size(0), Tn = embeds.size(1), Tp = cache.length();
  RESSA_CHECK_ARG(new_mask.dim() == 2 && new_mask.size(0) == B && new_mask.size(1) == Tn,
                  "[decode] new_mask must be [", B, ", ", Tn, "], got ", new_mask.sizes());
  RESSA_CHECK_ARG(Tp == 0 || cache.attn.size(0) == B, "[decode] cache holds ", cache.attn.size(0),
                  " sequences, embeds ", B);
  auto nm = new_mask.to(torch::kInt64);
  auto full = Tp ? torch::cat({cache.attn, nm}, 1) : nm;  // [B, Tp+Tn]
  const auto in = decoder_inputs(full, Tn, config.text, embeds.scalar_type());
  auto& blocks = language_model->model->blocks;
  cache.layers.resize(blocks.size());
  auto x = embeds;
  for (size_t i = 0; i < blocks.size(); ++i) x = blocks[i](x, in.cos, in.sin, in.bias, &cache.layers[i]);
  cache.attn = full;
  if (last_only) x = x.slice(1, Tn - 1);
  return language_model->lm_head(language_model->model->norm(x));
}

torch::Tensor LlavaImpl::forward(const torch::Tensor& pixels, const torch::Tensor& ids, const torch::Tensor& attn_mask) {
  return decode(embed(ids, image_features(pixels)), attn_mask);
}

std::vector<std::pair<std::string, Linear>> LlavaImpl::linears() {
  std::vector<std::pair<std::string, Linear>> out;
  for (auto& item : named_modules("", false)) {
    if (auto lin = std::dynamic_pointer_cast<LinearImpl>(item.value())) out.emplace_back(item.key(), Linear(lin));
  }
  return out;
}

std::vector<std::pair<std::string, Linear>> LlavaImpl::vision_block_linears() {
  // Blocks past the selected hidden state (vision_feature_layer) never reach the output: pruning,
  // repair and the sparsity accounting leave them out (they stay dense as loaded).
  static const std::string prefix = "vision_tower.vision_model.encoder.layers.";
  const int64_t used = config.vision_layers_used();
  std::vector<std::pair<std::string, Linear>> out;
  for (auto& [name, lin] : linears())
    if (name.rfind(prefix, 0) == 0 && std::stoll(name.substr(prefix.size())) < used) out.emplace_back(name, lin);
  return out;
}

std::vector<std::pair<std::string, Linear>> LlavaImpl::language_block_linears() {
  std::vector<std::pair<std::string, Linear>> out;
  for (auto& [name, lin] : linears())
    if (name.rfind("language_model.model.layers.", 0) == 0) out.emplace_back(name, lin);
  return out;
}

void LlavaImpl::set_teacher_mode(bool on) {
  for (auto& [name, lin] : linears()) lin->set_teacher_mode(on);
}

}  // namespace ressa::model
