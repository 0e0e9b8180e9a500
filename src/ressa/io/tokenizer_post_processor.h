// tokenizer.json post-processors: TemplateProcessing (its "single" template: special tokens
// around the sequence $A), ByteLevel (nothing to do on ids), Sequence of those, or null.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "ressa/io/tokenizer_json.h"

namespace ressa::io::tok {

class PostProcessor {
 public:
  // `single` is the template for one sequence: runs of special-token ids and the sequence
  // itself (an empty vector marks where $A goes).
  explicit PostProcessor(std::vector<std::vector<int64_t>> single) : single_(std::move(single)) {}
  // Applies the template to `ids` when add_special_tokens (else leaves them as they are).
  void process(std::vector<int64_t>& ids, bool add_special_tokens) const;

 private:
  std::vector<std::vector<int64_t>> single_;
};

// Builds the post-processor `j` (null, or one that adds nothing -> nullptr). `n_ids` bounds
// the special-token ids.
std::unique_ptr<PostProcessor> parse_post_processor(const json& j, const JsonAt& at, int64_t n_ids);

}  // namespace ressa::io::tok
