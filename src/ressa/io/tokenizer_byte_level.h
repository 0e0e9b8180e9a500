// GPT-2's byte-to-unicode table used by byte-level BPE: each of the 256 bytes maps to one
// printable code point (printable Latin-1 bytes map to themselves, the others to U+0100..).
#pragma once
#include <array>
#include <cstdint>
#include <string>

namespace ressa::io::tok {

// The UTF-8 text of the code point that stands for byte b.
const std::array<std::string, 256>& byte_to_unicode();
// The byte a code point stands for, or -1 when it is not one of the 256.
int unicode_to_byte(uint32_t cp);

}  // namespace ressa::io::tok
