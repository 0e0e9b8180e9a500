// Examples prepared for the model, the same way for every command (data::Processor: chat
// template + tokenizer + image processor): decoded images as one uint8 tensor, each example's
// generation prompt and its whole tokenized conversation with the assistant-token mask; and the
// batching used by training, calibration and repair (right-padded, loss on assistant tokens) and
// by generation (left-padded prompts).
//
// ressa's own models (WordLevel tokenizer, ressa's template) give the layout
//   <s> <image> x image_tokens  question-words  | answer-words </s>
// with the loss on the answer words and </s>.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

#include "ressa/data/conversation.h"
#include "ressa/data/dataset.h"
#include "ressa/data/processor.h"
#include "ressa/io/config.h"
#include "ressa/io/tokenizer.h"

namespace ressa::train {

struct VqaSet {
  torch::Tensor images;                        // uint8 [n_images, 3, H, W] after the processor's resize and crop
  data::PixelNorm norm;                        // the processor's rescale and normalize
  std::vector<int64_t> image_of;               // example -> row of `images`
  std::vector<std::vector<int64_t>> prompt;    // the first question's generation prompt (eval)
  std::vector<std::vector<int64_t>> sequence;  // the whole conversation (training, calibration, repair)
  std::vector<std::vector<uint8_t>> target;    // per sequence token: 1 = an assistant token the loss covers
  std::vector<data::VqaExample> examples;      // id, image, first question and answer, family
  int64_t image_prefix = 0;     // tokens every sequence starts with, through the image tokens
  int64_t max_answer_tokens = 0;  // longest first answer, in tokens with the one that ends it
  int64_t size() const { return static_cast<int64_t>(examples.size()); }
};

// Prepares samples[i] for i in `pick` (all when empty), in that order. When `strict` and the
// tokenizer is WordLevel, a word it lacks is an error naming the source, example id and word (the
// model cannot read that dataset). Images are decoded in parallel; every error names its file.
VqaSet build_vqa_set(const data::Samples& samples, const std::vector<int64_t>& pick, const data::Processor& proc,
                     const io::LlavaConfig& cfg, bool strict = true);
// read_samples(source, split), the first `limit` examples when limit > 0, prepared.
VqaSet load_vqa_set(const data::DataSource& source, const std::string& split, const data::Processor& proc,
                    const io::LlavaConfig& cfg, int64_t limit = 0, bool strict = true);
// A dataset directory's split for one of ressa's own models held in memory (ressa's template, its
// bilinear image pipeline): what `ressa train` uses before the model directory exists.
VqaSet load_vqa_split(const std::string& dir, const std::string& split, const io::Tokenizer& tok,
                      const io::LlavaConfig& cfg, int64_t limit = 0, bool strict = true);

// Builds the word-level tokenizer covering every word of the given dataset splits.
io::Tokenizer build_tokenizer(const std::string& dir, const std::vector<std::string>& splits);

struct Batch {
  torch::Tensor pixels;     // float [B,3,H,W], normalized with the config's mean/std
  torch::Tensor ids;        // int64 [B,T]
  torch::Tensor attn;       // int64 [B,T], 1 = real token
  torch::Tensor loss_mask;  // float [B,T-1]: 1 where logits[:, t] predict an assistant token ids[:, t+1]
};

// Right-padded whole sequences for teacher-forced training. `blind` blanks the images.
Batch make_train_batch(const VqaSet& set, const std::vector<int64_t>& idx, const io::Tokenizer& tok, const torch::Device& device, bool blind = false);
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
                        const std::vector<int64_t>& unit_idx, uint64_t order_seed, const io::Tokenizer& tok,
                        const torch::Device& device);
// Left-padded prompts for generation (loss_mask undefined).
Batch make_prompt_batch(const VqaSet& set, const std::vector<int64_t>& idx, const io::Tokenizer& tok, const torch::Device& device, bool blind = false);

// uint8 [B,3,H,W] -> float pixels with the set's rescale and normalize (data::PixelNorm, bit
// for bit); blind gives zeros (the mean image after normalizing).
torch::Tensor normalize_pixels(const torch::Tensor& u8, const data::PixelNorm& norm, bool blind);

// Mean cross-entropy over answer positions. logits [B,T,V], batch from make_train_batch.
torch::Tensor answer_cross_entropy(const torch::Tensor& logits, const Batch& batch);

}  // namespace ressa::train
