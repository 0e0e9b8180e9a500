// Greedy generation with a KV cache (see generate.h).
#include "ressa/eval/generate.h"

#include <algorithm>
#include <chrono>

#include "ressa/core/error.h"

namespace ressa::eval {

GenerateResult generate_greedy(model::Llava& net, const std::vector<int64_t>& prompt_ids, const torch::Tensor& pixels,
                               const GenerateOptions& o, const torch::Device& device,
                               const std::function<void(int64_t)>& on_token) {
  RESSA_CHECK_ARG(!prompt_ids.empty(), "[generate] empty prompt");
  const int64_t limit = net->config.text.max_sequence_length();
  RESSA_CHECK_ARG(int64_t(prompt_ids.size()) + o.max_new_tokens <= limit, "[generate] prompt of ", prompt_ids.size(),
                  " tokens + ", o.max_new_tokens, " new tokens exceeds the model's ", limit, " positions");
  torch::NoGradGuard no_grad;
  const auto t0 = std::chrono::steady_clock::now();
  const auto secs = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  auto ids = torch::tensor(prompt_ids, torch::kInt64).unsqueeze(0).to(device);
  auto embeds = pixels.defined() ? net->embed(ids, net->image_features(pixels.to(device)))
                                 : net->language_model->model->embed_tokens(ids);
  model::KvCache cache;
  auto logits = net->decode(embeds, torch::ones_like(ids), cache, /*last_only=*/true);
  GenerateResult r;
  const auto ones = torch::ones({1, 1}, ids.options());
  for (int64_t step = 0; step < o.max_new_tokens; ++step) {
    if (step > 0) {
      auto prev = torch::tensor({r.output_ids.back()}, torch::kInt64).view({1, 1}).to(device);
      logits = net->decode(net->language_model->model->embed_tokens(prev), ones, cache, /*last_only=*/true);
    }
    const int64_t next = logits.select(1, 0).argmax(-1).item<int64_t>();
    if (step == 0) r.prefill_seconds = secs();
    r.output_ids.push_back(next);
    if (on_token) on_token(next);
    if (std::find(o.eos_ids.begin(), o.eos_ids.end(), next) != o.eos_ids.end()) break;
  }
  r.seconds = secs();
  return r;
}

}  // namespace ressa::eval
