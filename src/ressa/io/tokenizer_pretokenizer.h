// tokenizer.json pre-tokenizers: Sequence, Split (with a known byte-level regex, Isolated),
// ByteLevel, Metaspace and, for WordLevel tokenizers only, Whitespace / WhitespaceSplit (ASCII
// classes; bytes >= 0x80 count as word characters). Any other type or option is refused.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "ressa/io/tokenizer_json.h"

namespace ressa::io::tok {

// A pre-token: its text and whether it starts at offset 0 of the encoded string (Metaspace's
// prepend_scheme "first" prepends only there).
struct Piece {
  std::string text;
  bool at_start = false;
};

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Splits every piece of `pieces` further (in place, order kept; empty pieces dropped).
  virtual void split(std::vector<Piece>& pieces) const = 0;
};

// Builds the pre-tokenizer `j` (null -> nullptr). `word_level` allows Whitespace(Split).
std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const JsonAt& at, bool word_level);

// HF "Whitespace" (\w+|[^\w\s]+ when split_punct, else "WhitespaceSplit" \S+), ASCII classes.
void split_words(const std::string& s, bool split_punct, std::vector<std::string>& out);

}  // namespace ressa::io::tok
