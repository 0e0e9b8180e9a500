// VQA evaluation: greedy decoding of each question's answer and exact-match accuracy,
// overall and per question family. `blind` replaces every image by the mean image.
#pragma once
#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "ressa/core/progress.h"
#include "ressa/io/tokenizer.h"
#include "ressa/model/llava.h"
#include "ressa/train/vqa_data.h"

namespace ressa::eval {

struct EvalOptions {
  int64_t batch = 64;          // questions per forward pass
  int64_t max_new_tokens = 0;  // answer length limit (tokens with the end token); 0: the set's longest
                               // first answer + 1, so a prediction that runs past it still shows as wrong
  std::vector<int64_t> eos_ids;  // tokens that end an answer (Processor::eos_ids); empty: the tokenizer's eos
  bool blind = false;
};

struct EvalResult {
  double accuracy = 0;
  int64_t n = 0;
  std::map<std::string, double> families;   // family -> accuracy
  std::map<std::string, int64_t> family_n;  // family -> count
  std::vector<std::string> predictions;     // decoded answers, in example order
  double seconds = 0;
};

// Lower-cases and collapses whitespace; exact match compares normalized strings.
std::string normalize_answer(const std::string& s);

EvalResult evaluate(model::Llava& net, const train::VqaSet& set, const io::Tokenizer& tok, const EvalOptions& opts,
                    const torch::Device& device, const ProgressSink& progress = nullptr);

}  // namespace ressa::eval
