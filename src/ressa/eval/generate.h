// Greedy generation for one prompt (ressa generate): the prompt (with its image features) is
// decoded once into a KV cache, then one token per step until an end-of-sequence id or the
// token limit, as transformers' generate(do_sample=False) does for batch 1.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <vector>

#include "ressa/model/llava.h"

namespace ressa::eval {

struct GenerateOptions {
  int64_t max_new_tokens = 32;
  std::vector<int64_t> eos_ids;  // generation stops after emitting one of these (kept in the output)
};

struct GenerateResult {
  std::vector<int64_t> output_ids;  // new tokens only
  double prefill_seconds = 0, seconds = 0;
};

// prompt_ids: the prompt's ids with each image token repeated once per image feature;
// pixels: [1, 3, H, W] normalized, or an undefined tensor for a prompt without an image.
// on_token is called with each new id as it is chosen (for streaming).
GenerateResult generate_greedy(model::Llava& net, const std::vector<int64_t>& prompt_ids, const torch::Tensor& pixels,
                               const GenerateOptions& options, const torch::Device& device,
                               const std::function<void(int64_t)>& on_token = nullptr);

}  // namespace ressa::eval
