// The byte <-> unicode tables of byte-level BPE (bytes_to_unicode() in GPT-2's encoder.py).
#include "ressa/io/tokenizer_byte_level.h"

#include "ressa/io/tokenizer_unicode.h"

namespace ressa::io::tok {
namespace {
struct Tables {
  std::array<std::string, 256> to_text;
  std::array<int, 324> to_byte;  // code points 0..323 cover the whole image
  Tables() {
    to_byte.fill(-1);
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
      const uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + n++);
      unicode::append_utf8(to_text[size_t(b)], cp);
      to_byte[cp] = b;
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}
}  // namespace

const std::array<std::string, 256>& byte_to_unicode() { return tables().to_text; }
int unicode_to_byte(uint32_t cp) { return cp < 324 ? tables().to_byte[cp] : -1; }

}  // namespace ressa::io::tok
