// The model stage of a tokenizer: one pre-token in, its ids out. WordLevel (a whole-word lookup
// with unk fallback) is declared here; BPE in tokenizer_bpe.h.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace ressa::io::tok {

class Model {
 public:
  virtual ~Model() = default;
  // Appends the ids of one pre-token.
  virtual void tokenize(std::string_view word, std::vector<int64_t>& out) const = 0;
};

class WordLevelModel final : public Model {
 public:
  WordLevelModel(std::unordered_map<std::string, int64_t> vocab, int64_t unk_id)
      : vocab_(std::move(vocab)), unk_id_(unk_id) {}
  void tokenize(std::string_view word, std::vector<int64_t>& out) const override;

 private:
  std::unordered_map<std::string, int64_t> vocab_;
  int64_t unk_id_;
};

}  // namespace ressa::io::tok
