// Added tokens (tokenizer.json "added_tokens"): found in the text before normalization and
// pre-tokenization, leftmost match first and the longest one at a position, as Hugging Face
// tokenizers' AddedVocabulary does. Tokens with normalized=false are matched in the raw text,
// those with normalized=true in the normalized text of the pieces between the first ones;
// lstrip/rstrip widen a match over adjacent whitespace, single_word skips a match that touches
// a word character.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ressa::io::tok {

struct AddedToken {
  std::string content;
  int64_t id = 0;
  bool special = false;
  bool normalized = false;
  bool lstrip = false, rstrip = false, single_word = false;
};

// A run of text: either an added token (id >= 0) or text for the model (id == -1).
struct Segment {
  size_t begin, end;  // byte range in the matched text
  int64_t id;
};

class AddedMatcher {
 public:
  AddedMatcher() = default;
  // Matches the tokens of `tokens` whose normalized flag equals `normalized`.
  AddedMatcher(const std::vector<AddedToken>& tokens, bool normalized);
  bool empty() const { return tokens_.empty(); }
  // Replaces `out` with segments covering `text` in order (at least one; text segments may be
  // empty).
  void split(std::string_view text, std::vector<Segment>& out) const;

 private:
  std::vector<AddedToken> tokens_;  // longest content first
  bool first_byte_[256] = {};
};

}  // namespace ressa::io::tok
