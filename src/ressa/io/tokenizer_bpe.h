// The BPE model of tokenizer.json: a word (one pre-token) is split into characters, unknown
// characters go to byte-fallback tokens <0xXX> or the unk token (fused when fuse_unk), then the
// lowest-ranked merge of adjacent symbols is applied until none is left (ties: leftmost first).
// Results are cached per word. Refuses: dropout, continuing_subword_prefix, end_of_word_suffix.
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ressa/io/tokenizer_json.h"
#include "ressa/io/tokenizer_model.h"

namespace ressa::io::tok {

class BpeModel final : public Model {
 public:
  // `model` is tokenizer.json's "model" object with "type": "BPE"; `vocab` its parsed vocab.
  BpeModel(const json& model, const std::unordered_map<std::string, int64_t>& vocab,
           const JsonAt& at);
  void tokenize(std::string_view word, std::vector<int64_t>& out) const override;
  // The unk token id, if the model has one.
  std::optional<int64_t> unk_id() const { return unk_id_; }

  // The merge loop without the cache (a naive reference for tests would call this).
  void tokenize_uncached(std::string_view word, std::vector<int32_t>& out) const;

 private:
  struct MergeTarget {
    int32_t rank;
    int32_t id;
  };
  static uint64_t pair_key(int32_t a, int32_t b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }

  std::unordered_map<std::string, int32_t> vocab_;
  std::unordered_map<uint64_t, MergeTarget> merges_;
  int32_t byte_ids_[256];  // id of "<0xXX>", -1 when absent
  std::optional<int64_t> unk_id_;
  bool fuse_unk_ = false, byte_fallback_ = false, ignore_merges_ = false;

  static constexpr size_t kCacheCapacity = 100000, kMaxCachedWordBytes = 256;
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace ressa::io::tok
