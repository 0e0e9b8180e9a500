// Hugging Face tokenizer.json reader/writer for the WordLevel model (the only model ressa's
// small VLMs use): added/special tokens matched literally first, then the normalizer
// (Lowercase or none), the pre-tokenizer (Whitespace: \w+|[^\w\s]+, or WhitespaceSplit) and
// a word -> id lookup with <unk> fallback. No post-processor: encode() adds no <s>/</s>.
// Character classes are ASCII-based; bytes >= 0x80 (UTF-8 non-ASCII) count as word chars.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace ressa::io {

class Tokenizer {
 public:
  // Reads and validates a tokenizer.json. Throws std::runtime_error "[Tokenizer::load] <path>:
  // <what>" for invalid JSON, a model type other than WordLevel, duplicate or out-of-range
  // ids, added tokens that disagree with the vocab, or a missing required special token
  // (<pad>, <unk>, <s>, </s>, <image>).
  static Tokenizer load(const std::string& path);
  // The same checks on tokenizer.json text held in memory; `where` names the source in messages.
  static Tokenizer parse(const std::string& json_text, const std::string& where);
  // Ids 0..4 = <pad>, <unk>, <s>, </s>, <image>; then the sorted unique `words` (each must be
  // a lower-case single pre-token, e.g. "circle" or "?"; std::invalid_argument otherwise).
  static Tokenizer build_word_level(const std::vector<std::string>& words);
  // Writes standard HF JSON (loadable by tokenizers.Tokenizer.from_file), atomically.
  void save(const std::string& path) const;

  std::vector<int64_t> encode(const std::string& text) const;
  // Tokens joined by single spaces; skip_special drops added special tokens (<pad>, <image>...).
  // Throws std::invalid_argument for an id outside [0, vocab_size()).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;

  int64_t token_to_id(const std::string& tok) const;  // throws std::invalid_argument if absent
  std::optional<int64_t> find(const std::string& tok) const;
  const std::string& id_to_token(int64_t id) const;  // throws std::invalid_argument if out of range
  int64_t vocab_size() const { return int64_t(id_to_tok_.size()); }
  int64_t pad_id() const { return pad_id_; }
  int64_t unk_id() const { return unk_id_; }
  int64_t bos_id() const { return bos_id_; }
  int64_t eos_id() const { return eos_id_; }
  int64_t image_id() const { return image_id_; }

 private:
  struct Added {
    std::string content;
    int64_t id = 0;
    bool special = true;
    bool normalized = false;  // matched against the lower-cased text (HF semantics)
  };
  enum class PreTok { kWhitespace, kWhitespaceSplit };
  void finish(const std::string& where);  // derives special ids, flags and match order

  std::vector<std::string> id_to_tok_;
  std::unordered_map<std::string, int64_t> tok_to_id_;
  std::vector<Added> added_;         // in id order, as saved
  std::vector<size_t> match_order_;  // indices into added_, longest content first
  std::vector<bool> is_special_;
  std::string unk_token_ = "<unk>";
  bool lowercase_ = true;
  PreTok pre_tok_ = PreTok::kWhitespace;
  int64_t pad_id_ = 0, unk_id_ = 1, bos_id_ = 2, eos_id_ = 3, image_id_ = 4;
};

}  // namespace ressa::io
