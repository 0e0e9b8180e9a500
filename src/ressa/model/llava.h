// The LLaVA architecture with Hugging Face parameter names (llava-hf checkpoints):
//   vision_tower.vision_model.*    CLIP ViT (patch conv, class token, learned positions, pre-LN
//                                  blocks) or SigLIP ViT (patch conv with bias, no class token)
//   multi_modal_projector.*        linear_1 -> GELU -> linear_2
//   language_model.model.*         Llama / Mistral / Qwen2 decoder (RMSNorm, RoPE, SwiGLU; Qwen2's
//                                  q/k/v biases), language_model.lm_head (tied to embed_tokens
//                                  when text_config.tie_word_embeddings)
// Checkpoints in the transformers >= 4.52 key layout map onto these names (io/key_layout.h).
// Image features replace the <image> tokens of the input (one token per image feature).
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "ressa/io/config.h"
#include "ressa/model/linear.h"

namespace ressa::model {

// 2-D sine-cosine position table [grid*grid + 1, dim] for a ViT's learned position embedding
// (row 0, the class token, is zero; patch p = (row, col) gets sin/cos of row in the first half
// of the dimensions and of col in the second).
torch::Tensor sincos_2d_positions(int64_t grid, int64_t dim);

// ---- vision tower (CLIP) --------------------------------------------------------------
class ClipAttentionImpl : public torch::nn::Module {
 public:
  explicit ClipAttentionImpl(const io::VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // x [B, T, D] -> [B, T, D]
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, out_proj{nullptr};
  int64_t heads;
};
TORCH_MODULE(ClipAttention);

class ClipMlpImpl : public torch::nn::Module {
 public:
  explicit ClipMlpImpl(const io::VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);
  Linear fc1{nullptr}, fc2{nullptr};
  std::string hidden_act;  // quick_gelu | gelu | gelu_pytorch_tanh
};
TORCH_MODULE(ClipMlp);

class ClipLayerImpl : public torch::nn::Module {
 public:
  explicit ClipLayerImpl(const io::VisionConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // pre-LN residual block
  ClipAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr}, layer_norm2{nullptr};
  ClipMlp mlp{nullptr};
};
TORCH_MODULE(ClipLayer);

class ClipEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipEmbeddingsImpl(const io::VisionConfig& c);
  // [B,3,H,W] -> [B, P, D] plus CLIP's class token first: [B, 1+P, D]. SigLIP has no class
  // token, and its patch conv has a bias.
  torch::Tensor forward(const torch::Tensor& pixels);
  torch::Tensor class_embedding;                       // [D]; CLIP only
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipEmbeddings);

class ClipEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderImpl(const io::VisionConfig& c);
  torch::nn::ModuleList layers;
};
TORCH_MODULE(ClipEncoder);

class ClipVisionTransformerImpl : public torch::nn::Module {
 public:
  explicit ClipVisionTransformerImpl(const io::VisionConfig& c);
  // The embeddings, then (CLIP) pre_layrnorm: the input of block 0, [B,3,H,W] -> [B, T, D].
  torch::Tensor embed(const torch::Tensor& pixels);
  ClipEmbeddings embeddings{nullptr};
  torch::nn::LayerNorm pre_layrnorm{nullptr};  // sic: the HF name; CLIP only (null for SigLIP)
  ClipEncoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};
  std::vector<ClipLayer> blocks;  // views of encoder.layers
};
TORCH_MODULE(ClipVisionTransformer);

class ClipVisionModelImpl : public torch::nn::Module {
 public:
  explicit ClipVisionModelImpl(const io::VisionConfig& c);
  ClipVisionTransformer vision_model{nullptr};
};
TORCH_MODULE(ClipVisionModel);

// ---- projector --------------------------------------------------------------------------
class ProjectorImpl : public torch::nn::Module {
 public:
  ProjectorImpl(int64_t vision_hidden, int64_t text_hidden, bool bias);
  torch::Tensor forward(const torch::Tensor& x);  // [B, P, Dv] -> [B, P, Dt]
  Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(Projector);

// ---- language model (Llama) ---------------------------------------------------------------
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;
  double eps;
};
TORCH_MODULE(RmsNorm);

// Keys and values of one decoder layer for the positions decoded so far (incremental decoding).
struct KvLayerCache {
  torch::Tensor k, v;  // [B, kv_heads, T_past, head_dim]; keys after RoPE; undefined when empty
};

class LlamaAttentionImpl : public torch::nn::Module {
 public:
  explicit LlamaAttentionImpl(const io::TextConfig& c);
  // x [B,T,D]; cos/sin [B,T,head_dim]; bias [B,1,T,T_past+T] additive (causal + padding).
  // With a cache, the keys/values of x are appended to it and attention covers all of them.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, KvLayerCache* cache = nullptr);
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  int64_t heads, kv_heads, head_dim;
};
TORCH_MODULE(LlamaAttention);

class LlamaMlpImpl : public torch::nn::Module {
 public:
  explicit LlamaMlpImpl(const io::TextConfig& c);
  torch::Tensor forward(const torch::Tensor& x);  // down(silu(gate(x)) * up(x))
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(LlamaMlp);

class LlamaLayerImpl : public torch::nn::Module {
 public:
  explicit LlamaLayerImpl(const io::TextConfig& c);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& bias, KvLayerCache* cache = nullptr);
  LlamaAttention self_attn{nullptr};
  LlamaMlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(LlamaLayer);

class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const io::TextConfig& c);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers;
  RmsNorm norm{nullptr};
  std::vector<LlamaLayer> blocks;
};
TORCH_MODULE(LlamaModel);

class LlamaForCausalLmImpl : public torch::nn::Module {
 public:
  explicit LlamaForCausalLmImpl(const io::TextConfig& c);
  LlamaModel model{nullptr};
  // With tied embeddings lm_head's weight shares embed_tokens' storage; checkpoints store it once.
  Linear lm_head{nullptr};
  bool tied = false;
};
TORCH_MODULE(LlamaForCausalLm);

// ---- the VLM ------------------------------------------------------------------------------

// The decoder state of a batch being generated: every layer's keys/values and the padding mask of
// the cached positions. Start empty; LlavaImpl::decode(embeds, new_mask, cache) fills it.
struct KvCache {
  std::vector<KvLayerCache> layers;
  torch::Tensor attn;  // [B, T_past] int64, 1 = real token; undefined when empty
  int64_t length() const { return attn.defined() ? attn.size(1) : 0; }
};

class LlavaImpl : public torch::nn::Module {
 public:
  explicit LlavaImpl(const io::LlavaConfig& c);

  // pixels [B,3,H,W] normalized -> image features [B, image_tokens, text_hidden]
  torch::Tensor image_features(const torch::Tensor& pixels);
  // Vision hidden states: [embeddings(after pre-LN), layer 1, ..., layer L], each [B, 1+P, Dv].
  std::vector<torch::Tensor> vision_hidden_states(const torch::Tensor& pixels);
  // Token embeddings with image features scattered into the <image> positions.
  // ids [B,T] int64, feats [B, image_tokens, D] -> [B,T,D]
  torch::Tensor embed(const torch::Tensor& ids, const torch::Tensor& feats);
  // Decoder from embeddings: embeds [B,T,D], attn_mask [B,T] (1 = real token; left or right
  // padding) -> logits [B,T,V]. Positions count real tokens only.
  torch::Tensor decode(const torch::Tensor& embeds, const torch::Tensor& attn_mask);
  // Incremental decoding: embeds [B,Tn,D] are the positions after those in cache, new_mask
  // [B,Tn] their padding mask. Appends them to cache and returns logits [B,Tn,V], or [B,1,V] for
  // the last position only when last_only. Same logits as decode() on the whole sequence (with
  // the whole mask) up to float rounding.
  torch::Tensor decode(const torch::Tensor& embeds, const torch::Tensor& new_mask, KvCache& cache,
                       bool last_only);
  // Full forward: logits [B,T,V].
  torch::Tensor forward(const torch::Tensor& pixels, const torch::Tensor& ids, const torch::Tensor& attn_mask);

  // Every Linear in the model by its HF name (without ".weight").
  std::vector<std::pair<std::string, Linear>> linears();
  // The Linears pruning targets: those inside the vision blocks that reach the output (the first
  // vision_layers_used()) and inside the language model blocks.
  std::vector<std::pair<std::string, Linear>> vision_block_linears();
  std::vector<std::pair<std::string, Linear>> language_block_linears();
  // Sets teacher mode on every Linear (dense W0 forward when the layer has one).
  void set_teacher_mode(bool on);
  // Activation checkpointing of every vision and decoder block in image_features() and
  // decode(embeds, mask) while gradients are on (model/activation_checkpoint.h); off by default.
  void set_checkpointing(bool on) { checkpointing_ = on; }

  io::LlavaConfig config;
  ClipVisionModel vision_tower{nullptr};
  Projector multi_modal_projector{nullptr};
  LlamaForCausalLm language_model{nullptr};

 private:
  bool checkpointing_ = false;
};
TORCH_MODULE(Llava);

// RoPE tables for positions [B,T] int64 -> (cos, sin) [B,T,head_dim] (HF rotate_half layout).
std::pair<torch::Tensor, torch::Tensor> rope_tables(const torch::Tensor& positions, int64_t head_dim, double theta);

// What every decoder layer takes besides its input, for the last Tn of the positions in mask
// [B, T] (1 = real token; the first T - Tn are already cached): RoPE tables [B,Tn,head_dim] at
// positions that count real tokens only, and the additive bias [B,1,Tn,T] (query i sees keys
// j <= T - Tn + i that are not padding). The one place the decoder's positions and mask are made.
struct DecoderInputs {
  torch::Tensor cos, sin, bias;
};
DecoderInputs decoder_inputs(const torch::Tensor& mask, int64_t Tn, const io::TextConfig& c,
                             torch::ScalarType dtype);

}  // namespace ressa::model
