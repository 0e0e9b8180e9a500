// Unicode character classes by binary search over generated code point ranges, with an ASCII
// fast path; strict UTF-8 decoding.
#include "ressa/io/tokenizer_unicode.h"

#include <algorithm>
#include <array>
#include <iterator>

#include "ressa/io/tokenizer_unicode_tables.h"

namespace ressa::io::unicode {
namespace {
template <size_t N>
bool in_ranges(const CodeRange (&r)[N], uint32_t cp) {
  auto it = std::upper_bound(std::begin(r), std::end(r), cp,
                             [](uint32_t c, const CodeRange& x) { return c < x.lo; });
  return it != std::begin(r) && cp <= std::prev(it)->hi;
}
uint8_t slow_class(uint32_t cp) {
  uint8_t k = 0;
  if (in_ranges(kLetterRanges, cp)) k |= kLetter;
  if (in_ranges(kNumberRanges, cp)) k |= kNumber;
  if (in_ranges(kWhiteSpaceRanges, cp)) k |= kSpace;
  return k;
}
const std::array<uint8_t, 256> kLatin1 = [] {
  std::array<uint8_t, 256> t{};
  for (uint32_t c = 0; c < 256; ++c) t[c] = slow_class(c);
  return t;
}();
}  // namespace

uint8_t char_class(uint32_t cp) { return cp < 256 ? kLatin1[cp] : slow_class(cp); }

uint32_t decode_utf8(std::string_view s, size_t i, size_t* len) {
  const auto b = [&](size_t k) { return uint8_t(s[i + k]); };
  const uint8_t c = b(0);
  *len = 1;
  if (c < 0x80) return c;
  size_t n;
  uint32_t cp, min;
  if ((c & 0xE0) == 0xC0) {
    n = 2, cp = c & 0x1F, min = 0x80;
  } else if ((c & 0xF0) == 0xE0) {
    n = 3, cp = c & 0x0F, min = 0x800;
  } else if ((c & 0xF8) == 0xF0) {
    n = 4, cp = c & 0x07, min = 0x10000;
  } else {
    return kInvalid;
  }
  if (i + n > s.size()) return kInvalid;
  for (size_t k = 1; k < n; ++k) {
    if ((b(k) & 0xC0) != 0x80) return kInvalid;
    cp = (cp << 6) | (b(k) & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return kInvalid;
  *len = n;
  return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out += char(cp);
  } else if (cp < 0x800) {
    out += char(0xC0 | (cp >> 6));
    out += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += char(0xE0 | (cp >> 12));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  } else {
    out += char(0xF0 | (cp >> 18));
    out += char(0x80 | ((cp >> 12) & 0x3F));
    out += char(0x80 | ((cp >> 6) & 0x3F));
    out += char(0x80 | (cp & 0x3F));
  }
}

}  // namespace ressa::io::unicode
