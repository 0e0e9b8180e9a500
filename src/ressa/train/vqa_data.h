// A VQA split prepared for the model: decoded images as one uint8 tensor, tokenized prompts
// and answers; and the batching used by training (right-padded, answer-token loss mask) and
// by generation (left-padded prompts).
//
// Sequence layout: <s> <image> x image_tokens  question-words  | answer-words </s>
// The loss covers only the answer words and </s>.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "ressa/data/dataset.h"
#include "ressa/io/config.h"
#include "ressa/io/tokenizer.h"

namespace ressa::train {

struct VqaSet {
  torch::Tensor images;                        // uint8 [n_images, 3, H, W] at the model's image size
  std::vector<int64_t> image_of;               // example -> row of `images`
  std::vector<std::vector<int64_t>> prompt;    // token ids (with the image tokens expanded)
  std::vector<std::vector<int64_t>> answer;    // answer ids + </s>
  std::vector<data::VqaExample> examples;
  int64_t image_prefix = 0;                    // tokens every prompt starts with: <s> + image tokens
  int64_t size() const { return static_cast<int64_t>(examples.size()); }
};

// Loads <dir>/<split>.jsonl (first `limit` examples when limit > 0) and decodes its images
// (resized to the config's image size if they differ). When `strict`, a word the tokenizer
// lacks is an error naming the file, line id and word (the model cannot read that dataset).
VqaSet load_vqa_split(const std::string& dir, const std::string& split, const io::Tokenizer& tok,
                      const io::LlavaConfig& cfg, int64_t limit = 0, bool strict = true);

// Builds the word-level tokenizer covering every word of the given dataset splits.
io::Tokenizer build_tokenizer(const std::string& dir, const std::vector<std::string>& splits);

struct Batch {
  torch::Tensor pixels;     // float [B,3,H,W], normalized with the config's mean/std
  torch::Tensor ids;        // int64 [B,T]
  torch::Tensor attn;       // int64 [B,T], 1 = real token
  torch::Tensor loss_mask;  // float [B,T-1]: 1 where logits[:, t] predict an answer token ids[:, t+1]
};

// Right-padded prompt+answer sequences for teacher-forced training. `blind` blanks the images.
Batch make_train_batch(const VqaSet& set, const std::vector<int64_t>& idx, const io::LlavaConfig& cfg,
                       const io::Tokenizer& tok, const torch::Device& device, bool blind = false);
// Packing (LLaVA-style multi-turn): the examples that share an image form one training
// sequence, <s> <image> x image_tokens q1 | a1 </s> q2 | a2 </s> ..., so one vision pass
// supervises every question of the image. A unit is a list of example indices; a group whose
// packed length would exceed max_tokens is split into several units. Units are in order of
// first appearance; examples keep file order within a unit.
std::vector<std::vector<int64_t>> pack_by_image(const VqaSet& set, int64_t max_tokens);
// Right-padded packed sequences of units[u] for u in unit_idx; the order of the questions in
// each sequence is shuffled by a pure function of (order_seed, u), so no question is always
// first and a unit's order does not depend on the rest of the batch (or on how a data-parallel
// job shards it). Loss covers every answer and its </s>.
Batch make_packed_batch(const VqaSet& set, const std::vector<std::vector<int64_t>>& units,
                        const std::vector<int64_t>& unit_idx, uint64_t order_seed, const io::LlavaConfig& cfg,
                        const io::Tokenizer& tok, const torch::Device& device);
// Left-padded prompts for generation (loss_mask undefined).
Batch make_prompt_batch(const VqaSet& set, const std::vector<int64_t>& idx, const io::LlavaConfig& cfg,
                        const io::Tokenizer& tok, const torch::Device& device, bool blind = false);

// uint8 [B,3,H,W] -> float normalized; blind gives the all-mean image (zeros after normalizing).
torch::Tensor normalize_pixels(const torch::Tensor& u8, const io::LlavaConfig& cfg, bool blind);

// Mean cross-entropy over answer positions. logits [B,T,V], batch from make_train_batch.
torch::Tensor answer_cross_entropy(const torch::Tensor& logits, const Batch& batch);

}  // namespace ressa::train
