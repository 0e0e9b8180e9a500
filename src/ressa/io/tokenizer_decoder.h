// tokenizer.json decoders: Sequence, ByteLevel, Metaspace, Replace (string pattern),
// ByteFallback, Fuse, Strip. Any other type is refused when the file is loaded.
#pragma once
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "ressa/io/tokenizer_json.h"

namespace ressa::io::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings (HF decode_chain); the decoded text is their concatenation.
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// Builds the decoder `j` (null -> nullptr). `added` holds the added tokens' contents, which the
// ByteLevel decoder passes through unchanged.
std::unique_ptr<Decoder> parse_decoder(const json& j, const JsonAt& at,
                                       const std::unordered_set<std::string>& added);

}  // namespace ressa::io::tok
