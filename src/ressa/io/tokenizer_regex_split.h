// Hand-written matchers for the pre-tokenization regexes of byte-level BPE tokenizers (GPT-2,
// Qwen2, Llama-3), exact to their leftmost-first alternation and backtracking, without a regex
// engine. The Split pre-tokenizer's pattern and the ByteLevel pre-tokenizer's built-in one must be
// one of these strings, else the tokenizer is refused.
#pragma once
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ressa::io::tok {

enum class SplitPattern {
  // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
  kGpt2,
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|
  // \s*[\r\n]+|\s+(?!\S)|\s+
  kQwen2,
  // As kQwen2 with \p{N}{1,3} (digits in runs of up to three).
  kLlama3,
};

// The pattern whose regex source is `regex` exactly, if any.
std::optional<SplitPattern> split_pattern_from_regex(const std::string& regex);
const char* split_pattern_regex(SplitPattern p);

// Appends to `out` the consecutive matches of `p` in `text` (these patterns match every
// character, so the matches tile the text; any gap would be emitted as its own piece, as the
// Isolated split behaviour does).
void regex_split(std::string_view text, SplitPattern p, std::vector<std::string_view>& out);

}  // namespace ressa::io::tok
