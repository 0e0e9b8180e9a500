// Hugging Face tokenizer.json reader with the WordLevel model (ressa's small VLMs) and the BPE
// model (Llama / Vicuna / Mistral / phi-3 SentencePiece-style BPE with byte fallback; GPT-2 /
// Qwen2 byte-level BPE), encoding and decoding as Hugging Face tokenizers does:
//   added tokens matched first (tokenizer_added.h) -> normalizer (tokenizer_normalizer.h) ->
//   pre-tokenizer (tokenizer_pretokenizer.h) -> model (tokenizer_model.h, tokenizer_bpe.h) ->
//   post-processor (tokenizer_post_processor.h); decode: decoder (tokenizer_decoder.h).
// Components ressa does not implement are refused when the file is loaded, naming the field.
// Special tokens: a WordLevel file must have <pad>, <unk>, <s>, </s> and <image>; for a BPE file
// bos / eos / pad come from tokenizer_config.json (load_dir, or parse with a config text), unk
// from the model's unk_token (or the config), image from an added or vocab token "<image>".
// Any of them may be absent (has_bos() ...), and then its accessor throws.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "ressa/io/tokenizer_added.h"

namespace ressa::io {

namespace tok {
class Normalizer;
class PreTokenizer;
class Model;
class PostProcessor;
class Decoder;
class AddedMatcher;
}  // namespace tok

class Tokenizer {
 public:
  // Reads and validates a tokenizer.json (only that file). Throws std::runtime_error
  // "[Tokenizer::load] <path>: <field>: <what>" for invalid JSON, an unsupported model type or
  // component, duplicate or out-of-range ids, added tokens that disagree with the vocab, a merge
  // naming a token outside the vocab, or (WordLevel) a missing required special token.
  static Tokenizer load(const std::string& path);
  // Reads model_dir/tokenizer.json and, when present, model_dir/tokenizer_config.json (its
  // bos_token, eos_token, pad_token, unk_token, add_bos_token, add_eos_token and
  // clean_up_tokenization_spaces; a token may be a string or {"content": ...}).
  static Tokenizer load_dir(const std::string& model_dir);
  // The same checks on tokenizer.json text held in memory; `where` names the source in messages.
  static Tokenizer parse(const std::string& json_text, const std::string& where);
  // With the text of a tokenizer_config.json (config_where names it in messages).
  static Tokenizer parse(const std::string& json_text, const std::string& where,
                         const std::string& config_text, const std::string& config_where);
  // Ids 0..4 = <pad>, <unk>, <s>, </s>, <image>; then the sorted unique `words` (each must be
  // a lower-case single pre-token, e.g. "circle" or "?"; std::invalid_argument otherwise).
  static Tokenizer build_word_level(const std::vector<std::string>& words);
  // Writes the tokenizer.json atomically: the text it was loaded from, or, for one made by
  // build_word_level, standard HF JSON (loadable by tokenizers.Tokenizer.from_file).
  void save(const std::string& path) const;

  // The ids of `text` without the post-processor's special tokens (no <s>/</s>):
  // encode(text, false). `text` should be UTF-8; an invalid byte is taken as a character of its own.
  std::vector<int64_t> encode(const std::string& text) const;
  // add_special_tokens applies the post-processor's template (e.g. <s> before the text), as
  // tokenizers' encode(text, add_special_tokens=True) does.
  std::vector<int64_t> encode(const std::string& text, bool add_special_tokens) const;
  // The text of `ids` through the decoder (tokens joined by single spaces when the file has
  // none, as WordLevel files do); skip_special drops added special tokens (<pad>, <image>...).
  // Throws std::invalid_argument for an id outside [0, vocab_size()).
  std::string decode(const std::vector<int64_t>& ids, bool skip_special = true) const;

  int64_t token_to_id(const std::string& tok) const;  // throws std::invalid_argument if absent
  std::optional<int64_t> find(const std::string& tok) const;
  const std::string& id_to_token(int64_t id) const;  // throws std::invalid_argument if out of range
  int64_t vocab_size() const { return int64_t(id_to_tok_.size()); }
  // Whether id is an added token marked special (skipped by decode(ids, true)).
  bool is_special(int64_t id) const;
  const std::string& model_type() const { return model_type_; }  // "WordLevel" or "BPE"

  // Special token ids; each accessor throws std::invalid_argument when the token is absent.
  int64_t pad_id() const { return special(pad_id_, "pad_id"); }
  int64_t unk_id() const { return special(unk_id_, "unk_id"); }
  int64_t bos_id() const { return special(bos_id_, "bos_id"); }
  int64_t eos_id() const { return special(eos_id_, "eos_id"); }
  int64_t image_id() const { return special(image_id_, "image_id"); }
  bool has_pad() const { return pad_id_.has_value(); }
  bool has_unk() const { return unk_id_.has_value(); }
  bool has_bos() const { return bos_id_.has_value(); }
  bool has_eos() const { return eos_id_.has_value(); }
  bool has_image() const { return image_id_.has_value(); }
  // tokenizer_config.json's add_bos_token / add_eos_token (false without a config): whether the
  // model expects <s> / </s> around a prompt; encode() itself adds only what the
  // post-processor's template says.
  bool add_bos_token() const { return add_bos_token_; }
  bool add_eos_token() const { return add_eos_token_; }

 private:
  static int64_t special(const std::optional<int64_t>& id, const char* what);

  std::vector<std::string> id_to_tok_;
  std::unordered_map<std::string, int64_t> tok_to_id_;
  std::vector<tok::AddedToken> added_;  // in id order
  std::vector<bool> is_special_;
  std::shared_ptr<const tok::AddedMatcher> raw_added_, normalized_added_;
  std::shared_ptr<const tok::Normalizer> normalizer_;
  std::shared_ptr<const tok::PreTokenizer> pre_tokenizer_;
  std::shared_ptr<const tok::Model> model_;
  std::shared_ptr<const tok::PostProcessor> post_processor_;
  std::shared_ptr<const tok::Decoder> decoder_;
  std::string model_type_;
  std::string source_json_;  // the text it was loaded from; empty for build_word_level
  bool clean_up_spaces_ = false;
  std::optional<int64_t> pad_id_, unk_id_, bos_id_, eos_id_, image_id_;
  bool add_bos_token_ = false, add_eos_token_ = false;
};

}  // namespace ressa::io
