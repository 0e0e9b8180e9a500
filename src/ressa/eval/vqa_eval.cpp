// Greedy VQA decoding and exact-match accuracy (see vqa_eval.h).
#include "ressa/eval/vqa_eval.h"

#include <algorithm>
#include <cctype>
#include <chrono>
#include <sstream>

namespace ressa::eval {

std::string normalize_answer(const std::string& s) {
  std::istringstream in(s);
  std::string w, out;
  while (in >> w) {
    for (auto& c : w) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    out += (out.empty() ? "" : " ") + w;
  }
  return out;
}

EvalResult evaluate(model::Llava& net, const train::VqaSet& set, const io::Tokenizer& tok, const EvalOptions& o,
                    const torch::Device& device, const ProgressSink& progress) {
  torch::NoGradGuard ng;
  net->eval();
  const auto t0 = std::chrono::steady_clock::now();
  EvalResult res;
  res.n = set.size();
  res.predictions.resize(set.size());
  Progress prog("eval", set.size(), progress, 2.0);
  const int64_t max_new = o.max_new_tokens > 0 ? o.max_new_tokens : set.max_answer_tokens + 1;
  std::vector<int64_t> eos = o.eos_ids;
  if (eos.empty()) eos.push_back(tok.eos_id());
  for (int64_t start = 0; start < set.size(); start += o.batch) {
    std::vector<int64_t> idx;
    for (int64_t i = start; i < std::min(set.size(), start + o.batch); ++i) idx.push_back(i);
    auto b = train::make_prompt_batch(set, idx, tok, device, o.blind);
    // The prompt (left padded) is decoded once into a KV cache; each step then decodes only
    // the token it appended.
    model::KvCache cache;
    auto logits = net->decode(net->embed(b.ids, net->image_features(b.pixels)), b.attn, cache, /*last_only=*/true);
    const int64_t B = static_cast<int64_t>(idx.size());
    std::vector<std::vector<int64_t>> out(B);
    std::vector<bool> done(B, false);
    torch::Tensor next_ids;
    for (int64_t step = 0; step < max_new; ++step) {
      if (step > 0) logits = net->decode(net->language_model->model->embed_tokens(next_ids).unsqueeze(1),
                                         torch::ones({B, 1}, b.attn.options()), cache, /*last_only=*/true);
      auto next = logits.select(1, 0).argmax(-1);  // [B]
      auto next_cpu = next.cpu();
      bool all_done = true;
      for (int64_t i = 0; i < B; ++i) {
        if (done[i]) continue;
        const int64_t t = next_cpu[i].item<int64_t>();
        if (std::find(eos.begin(), eos.end(), t) != eos.end()) done[i] = true;
        else out[i].push_back(t);
        all_done = all_done && done[i];
      }
      if (all_done) break;
      next_ids = next;
    }
    for (int64_t i = 0; i < B; ++i) res.predictions[idx[i]] = tok.decode(out[i], /*skip_special=*/true);
    prog.update(idx.back() + 1);
  }
  int64_t correct = 0;
  std::map<std::string, int64_t> fam_correct;
  for (int64_t i = 0; i < set.size(); ++i) {
    const auto& ex = set.examples[i];
    const bool ok = normalize_answer(res.predictions[i]) == normalize_answer(ex.answer);
    correct += ok;
    fam_correct[ex.family] += ok;
    res.family_n[ex.family] += 1;
  }
  res.accuracy = res.n > 0 ? static_cast<double>(correct) / res.n : 0.0;
  for (auto& [f, n] : res.family_n) res.families[f] = static_cast<double>(fam_correct[f]) / n;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace ressa::eval
