// WordLevel model: the pre-token's id in the vocab, or the unk id.
#include "ressa/io/tokenizer_model.h"

namespace ressa::io::tok {

void WordLevelModel::tokenize(std::string_view word, std::vector<int64_t>& out) const {
  auto it = vocab_.find(std::string(word));
  out.push_back(it == vocab_.end() ? unk_id_ : it->second);
}

}  // namespace ressa::io::tok
