// UTF-8 decoding and the Unicode character classes (\p{L}, \p{N}, \s) that the tokenizer's
// pre-tokenizers and added-token matching need. Tables: tokenizer_unicode_tables.h (generated).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace ressa::io::unicode {

// Character class bits of one code point.
enum : uint8_t { kLetter = 1, kNumber = 2, kSpace = 4 };
uint8_t char_class(uint32_t cp);
inline bool is_letter(uint32_t cp) { return char_class(cp) & kLetter; }
inline bool is_number(uint32_t cp) { return char_class(cp) & kNumber; }
inline bool is_whitespace(uint32_t cp) { return char_class(cp) & kSpace; }

// Code point used for a byte that does not start a valid UTF-8 sequence: it belongs to no class
// (like U+FFFD), and the decoder steps over that one byte.
inline constexpr uint32_t kInvalid = 0xFFFD;

// Decodes the code point starting at s[i] (i < s.size()); *len receives its byte length
// (1 for an invalid, overlong, surrogate or truncated sequence, which decodes as kInvalid).
uint32_t decode_utf8(std::string_view s, size_t i, size_t* len);
// Byte length of the UTF-8 sequence starting at s[i] (1 for an invalid one).
inline size_t utf8_len(std::string_view s, size_t i) {
  size_t n;
  decode_utf8(s, i, &n);
  return n;
}
void append_utf8(std::string& out, uint32_t cp);

}  // namespace ressa::io::unicode
