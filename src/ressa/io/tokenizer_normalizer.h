// tokenizer.json normalizers: Sequence, Prepend, Replace (string pattern) and, for WordLevel
// tokenizers only, Lowercase (ASCII). Any other type is refused when the file is loaded.
#pragma once
#include <memory>
#include <string>

#include "ressa/io/tokenizer_json.h"

namespace ressa::io::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void normalize(std::string& text) const = 0;
};

// ASCII lower-casing (the WordLevel tokenizers ressa builds use it; it keeps byte offsets).
std::string ascii_lower(std::string s);

// Builds the normalizer `j` (null -> nullptr). `word_level` allows Lowercase.
std::unique_ptr<Normalizer> parse_normalizer(const json& j, const JsonAt& at, bool word_level);

}  // namespace ressa::io::tok
