// Added-token matching: at each position (only those whose byte can start a token) the
// longest token that matches wins; lstrip/rstrip take the whitespace beside the match into it.
#include "ressa/io/tokenizer_added.h"

#include <algorithm>

#include "ressa/io/tokenizer_unicode.h"

namespace ressa::io::tok {
namespace {
// The code point that ends just before byte `pos` (0 when pos == 0).
uint32_t cp_before(std::string_view s, size_t pos, size_t* start) {
  size_t k = pos;
  while (k > 0 && (uint8_t(s[k - 1]) & 0xC0) == 0x80 && pos - k < 3) --k;
  if (k > 0) --k;
  size_t len;
  uint32_t cp = unicode::decode_utf8(s, k, &len);
  if (k + len != pos) {  // not a whole code point: step back one byte only
    k = pos - 1;
    cp = unicode::kInvalid;
  }
  *start = k;
  return cp;
}
// Rust's char::is_alphanumeric() || '_', approximated with the L and N categories.
bool word_char(uint32_t cp) {
  return cp == '_' || (unicode::char_class(cp) & (unicode::kLetter | unicode::kNumber));
}
}  // namespace

AddedMatcher::AddedMatcher(const std::vector<AddedToken>& tokens, bool normalized) {
  for (const AddedToken& t : tokens)
    if (t.normalized == normalized && !t.content.empty()) tokens_.push_back(t);
  std::stable_sort(tokens_.begin(), tokens_.end(), [](const AddedToken& a, const AddedToken& b) {
    return a.content.size() > b.content.size();
  });
  for (const AddedToken& t : tokens_) first_byte_[uint8_t(t.content[0])] = true;
}

void AddedMatcher::split(std::string_view text, std::vector<Segment>& out) const {
  out.clear();
  size_t done = 0;  // end of the last emitted segment
  size_t i = 0;
  while (i < text.size()) {
    if (!first_byte_[uint8_t(text[i])]) {
      ++i;
      continue;
    }
    const AddedToken* hit = nullptr;
    for (const AddedToken& t : tokens_) {
      if (text.compare(i, t.content.size(), t.content) != 0) continue;
      if (t.single_word) {
        size_t k;
        const bool word_before = i > 0 && word_char(cp_before(text, i, &k));
        const size_t e = i + t.content.size();
        size_t len;
        const bool word_after = e < text.size() && word_char(unicode::decode_utf8(text, e, &len));
        if (word_before || word_after) continue;
      }
      hit = &t;
      break;
    }
    if (!hit) {
      ++i;
      continue;
    }
    size_t begin = i, end = i + hit->content.size();
    if (hit->lstrip) {
      while (begin > done) {
        size_t k;
        const uint32_t cp = cp_before(text, begin, &k);
        if (!unicode::is_whitespace(cp)) break;
        begin = std::max(k, done);
      }
    }
    if (hit->rstrip) {
      while (end < text.size()) {
        size_t len;
        const uint32_t cp = unicode::decode_utf8(text, end, &len);
        if (!unicode::is_whitespace(cp)) break;
        end += len;
      }
    }
    if (begin > done) out.push_back({done, begin, -1});
    out.push_back({begin, end, hit->id});
    done = i = end;
  }
  if (done < text.size() || out.empty()) out.push_back({done, text.size(), -1});
}

}  // namespace ressa::io::tok
