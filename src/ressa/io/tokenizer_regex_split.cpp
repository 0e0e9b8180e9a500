// The byte-level BPE pre-tokenization regexes as explicit matchers. Each match_* function tries
// the pattern's alternatives in order at char index i and returns the end of the first one that
// matches (leftmost-first, as Oniguruma and JavaScript pick), replaying the backtracking of the
// greedy quantifiers where it matters (\s*[\r\n]+ and \s+(?!\S)).
#include "ressa/io/tokenizer_regex_split.h"

#include <cstdint>

#include "ressa/io/tokenizer_unicode.h"

namespace ressa::io::tok {
namespace {
using unicode::kLetter;
using unicode::kNumber;
using unicode::kSpace;

const char* const kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// The text as code points: cp[k], its class bits cls[k]; chars are indexed 0..n-1.
struct Chars {
  std::vector<uint32_t> cp;
  std::vector<uint8_t> cls;
  std::vector<size_t> off;  // byte offset of char k; off[n] = text size
  size_t n = 0;
  bool other(size_t k) const { return !(cls[k] & (kLetter | kNumber | kSpace)); }
  bool newline(size_t k) const { return cp[k] == '\r' || cp[k] == '\n'; }
  size_t run(size_t k, uint8_t mask) const {
    while (k < n && (cls[k] & mask)) ++k;
    return k;
  }
  size_t run_other(size_t k) const {
    while (k < n && other(k)) ++k;
    return k;
  }
};

uint32_t ascii_lower(uint32_t c) { return c >= 'A' && c <= 'Z' ? c + 32 : c; }

// 's|'t|'re|'ve|'m|'ll|'d, optionally ASCII case-insensitive; 0 when none matches.
size_t contraction(const Chars& c, size_t i, bool fold) {
  if (c.cp[i] != '\'' || i + 1 >= c.n) return 0;
  auto at = [&](size_t k) { return fold ? ascii_lower(c.cp[k]) : c.cp[k]; };
  const uint32_t a = at(i + 1);
  if (a == 's' || a == 't' || a == 'm' || a == 'd') return i + 2;
  if (i + 2 >= c.n) return 0;
  const uint32_t b = at(i + 2);
  if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return i + 3;
  return 0;
}

// \s+(?!\S) then \s+ at a whitespace char i: the run minus its last char when a non-space follows
// (and the run has two or more chars), else the whole run.
size_t spaces(const Chars& c, size_t i) {
  const size_t e = c.run(i, kSpace);
  if (e == c.n || e - i < 2) return e;
  return e - 1;
}

size_t match_gpt2(const Chars& c, size_t i) {
  if (size_t j = contraction(c, i, false)) return j;
  const size_t s = (c.cp[i] == ' ' && i + 1 < c.n) ? i + 1 : i;  // the optional leading space
  for (size_t k : {s, i}) {  // with the space first, then without it
    if (c.cls[k] & kLetter) return c.run(k, kLetter);
    if (c.cls[k] & kNumber) return c.run(k, kNumber);
    if (c.other(k)) return c.run_other(k);
  }
  return spaces(c, i);  // c.cp[i] is whitespace here
}

size_t match_qwen2(const Chars& c, size_t i, size_t max_digits) {
  if (size_t j = contraction(c, i, true)) return j;
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (!(c.cls[i] & (kLetter | kNumber)) && !c.newline(i) && i + 1 < c.n &&
      (c.cls[i + 1] & kLetter))
    return c.run(i + 1, kLetter);
  if (c.cls[i] & kLetter) return c.run(i, kLetter);
  // \p{N}{1,max_digits}
  if (c.cls[i] & kNumber) {
    size_t j = i + 1;
    while (j < c.n && j - i < max_digits && (c.cls[j] & kNumber)) ++j;
    return j;
  }
  //  ?[^\s\p{L}\p{N}]+[\r\n]*
  const size_t s = (c.cp[i] == ' ' && i + 1 < c.n) ? i + 1 : i;
  if (c.other(s)) {
    size_t j = c.run_other(s);
    while (j < c.n && c.newline(j)) ++j;
    return j;
  }
  // \s*[\r\n]+ : up to the last newline of the whitespace run
  const size_t e = c.run(i, kSpace);
  for (size_t k = e; k > i; --k)
    if (c.newline(k - 1)) return k;
  return spaces(c, i);
}
}  // namespace

std::optional<SplitPattern> split_pattern_from_regex(const std::string& regex) {
  if (regex == kGpt2Regex) return SplitPattern::kGpt2;
  if (regex == kQwen2Regex) return SplitPattern::kQwen2;
  if (regex == kLlama3Regex) return SplitPattern::kLlama3;
  return std::nullopt;
}

const char* split_pattern_regex(SplitPattern p) {
  switch (p) {
    case SplitPattern::kGpt2: return kGpt2Regex;
    case SplitPattern::kQwen2: return kQwen2Regex;
    case SplitPattern::kLlama3: return kLlama3Regex;
  }
  return "";
}

void regex_split(std::string_view text, SplitPattern p, std::vector<std::string_view>& out) {
  thread_local Chars c;
  c.cp.clear(), c.cls.clear(), c.off.clear();
  for (size_t i = 0; i < text.size();) {
    size_t len;
    const uint32_t cp = unicode::decode_utf8(text, i, &len);
    c.cp.push_back(cp);
    c.cls.push_back(unicode::char_class(cp));
    c.off.push_back(i);
    i += len;
  }
  c.n = c.cp.size();
  c.off.push_back(text.size());
  for (size_t i = 0; i < c.n;) {
    size_t j = p == SplitPattern::kGpt2 ? match_gpt2(c, i)
                                        : match_qwen2(c, i, p == SplitPattern::kQwen2 ? 1 : 3);
    if (j <= i) j = i + 1;  // not reachable: every char starts some match
    out.push_back(text.substr(c.off[i], c.off[j] - c.off[i]));
    i = j;
  }
}

}  // namespace ressa::io::tok
