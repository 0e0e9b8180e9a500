// Pre-tokenizers with the semantics of Hugging Face tokenizers. ByteLevel: optional prefix
// space, optional GPT-2 regex split, then every byte replaced by its byte-level code point.
// Metaspace: spaces become the replacement (U+2581 "▁"), which is prepended per prepend_scheme;
// split=true cuts before every replacement (MergedWithNext).
#include "ressa/io/tokenizer_pretokenizer.h"

#include <cctype>
#include <string_view>

#include "ressa/io/tokenizer_byte_level.h"
#include "ressa/io/tokenizer_regex_split.h"

namespace ressa::io::tok {
namespace {

// Applies `fn(piece, out)` to every piece, collecting the non-empty results in order.
template <typename Fn>
void for_each_piece(std::vector<Piece>& pieces, Fn fn) {
  std::vector<Piece> out;
  out.reserve(pieces.size() * 2);
  for (Piece& p : pieces) fn(p, out);
  pieces.swap(out);
}

class SequencePreTokenizer final : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts)
      : parts_(std::move(parts)) {}
  void split(std::vector<Piece>& pieces) const override {
    for (const auto& p : parts_) p->split(pieces);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

class SplitPreTokenizer final : public PreTokenizer {
 public:
  explicit SplitPreTokenizer(SplitPattern p) : pattern_(p) {}
  void split(std::vector<Piece>& pieces) const override {
    std::vector<std::string_view> parts;
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      parts.clear();
      regex_split(p.text, pattern_, parts);
      for (size_t i = 0; i < parts.size(); ++i)
        out.push_back({std::string(parts[i]), p.at_start && i == 0});
    });
  }

 private:
  SplitPattern pattern_;
};

class ByteLevelPreTokenizer final : public PreTokenizer {
 public:
  ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex)
      : add_prefix_space_(add_prefix_space), use_regex_(use_regex) {}
  void split(std::vector<Piece>& pieces) const override {
    const auto& map = byte_to_unicode();
    std::vector<std::string_view> parts;
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
      parts.clear();
      if (use_regex_)
        regex_split(p.text, SplitPattern::kGpt2, parts);
      else
        parts.push_back(p.text);
      for (size_t i = 0; i < parts.size(); ++i) {
        Piece q{std::string(), p.at_start && i == 0};
        q.text.reserve(parts[i].size() * 2);
        for (unsigned char b : parts[i]) q.text += map[b];
        if (!q.text.empty()) out.push_back(std::move(q));
      }
    });
  }

 private:
  bool add_prefix_space_, use_regex_;
};

enum class PrependScheme { kAlways, kFirst, kNever };

class MetaspacePreTokenizer final : public PreTokenizer {
 public:
  MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
      : rep_(std::move(replacement)), scheme_(scheme), split_(split) {}
  void split(std::vector<Piece>& pieces) const override {
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      std::string t;
      t.reserve(p.text.size() + 8);
      for (char c : p.text) {
        if (c == ' ')
          t += rep_;
        else
          t += c;
      }
      const bool starts = t.compare(0, rep_.size(), rep_) == 0;
      if (!starts && (scheme_ == PrependScheme::kAlways ||
                      (scheme_ == PrependScheme::kFirst && p.at_start)))
        t.insert(0, rep_);
      if (!split_) {
        if (!t.empty()) out.push_back({std::move(t), p.at_start});
        return;
      }
      // MergedWithNext: each replacement starts a new piece.
      size_t from = 0;
      for (size_t k = t.find(rep_, rep_.size() > 0 ? 1 : 0); k != std::string::npos;
           k = t.find(rep_, k + rep_.size())) {
        if (k > from) out.push_back({t.substr(from, k - from), p.at_start && from == 0});
        from = k;
      }
      if (from < t.size()) out.push_back({t.substr(from), p.at_start && from == 0});
    });
  }

 private:
  std::string rep_;
  PrependScheme scheme_;
  bool split_;
};

class WhitespacePreTokenizer final : public PreTokenizer {
 public:
  explicit WhitespacePreTokenizer(bool split_punct) : split_punct_(split_punct) {}
  void split(std::vector<Piece>& pieces) const override {
    std::vector<std::string> words;
    for_each_piece(pieces, [&](Piece& p, std::vector<Piece>& out) {
      words.clear();
      split_words(p.text, split_punct_, words);
      for (std::string& w : words) out.push_back({std::move(w), false});
    });
  }

 private:
  bool split_punct_;
};

enum class CharClass { kSpace, kWord, kOther };
CharClass char_class(unsigned char c) {
  if (c == ' ' || (c >= '\t' && c <= '\r')) return CharClass::kSpace;
  if (std::isalnum(c) || c == '_' || c >= 0x80) return CharClass::kWord;  // >= 0x80: UTF-8
  return CharClass::kOther;
}
}  // namespace

void split_words(const std::string& s, bool split_punct, std::vector<std::string>& out) {
  size_t i = 0;
  while (i < s.size()) {
    CharClass k = char_class(s[i]);
    if (k == CharClass::kSpace) {
      ++i;
      continue;
    }
    size_t j = i + 1;
    while (j < s.size()) {
      CharClass kj = char_class(s[j]);
      if (kj == CharClass::kSpace || (split_punct && kj != k)) break;
      ++j;
    }
    out.push_back(s.substr(i, j - i));
    i = j;
  }
}

std::unique_ptr<PreTokenizer> parse_pre_tokenizer(const json& j, const JsonAt& at, bool word_level) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, at);
  if (type == "Sequence") {
    const json* list = find_field(j, "pretokenizers");
    if (!list || !list->is_array()) at.at("pretokenizers").fail("must be an array");
    std::vector<std::unique_ptr<PreTokenizer>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      auto p = parse_pre_tokenizer((*list)[i], at.at("pretokenizers").at(i), word_level);
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequencePreTokenizer>(std::move(parts));
  }
  if (type == "Split") {
    const json* pat = find_field(j, "pattern");
    const json* re = pat && pat->is_object() ? find_field(*pat, "Regex") : nullptr;
    if (!re || !re->is_string())
      at.at("pattern").fail("must be {\"Regex\": ...} holding one of the supported patterns");
    auto p = split_pattern_from_regex(re->get<std::string>());
    if (!p)
      at.at("pattern.Regex")
          .fail("unsupported regex (supported: the GPT-2 pattern ", split_pattern_regex(SplitPattern::kGpt2),
                ", the Qwen2 pattern ", split_pattern_regex(SplitPattern::kQwen2),
                " and the Llama-3 pattern with \\p{N}{1,3})");
    const std::string behavior = string_field(j, "behavior", at);
    if (behavior != "Isolated")
      at.at("behavior").fail("unsupported split behavior '", behavior, "' (supported: Isolated)");
    if (bool_field(j, "invert", false, at)) at.at("invert").fail("invert=true is not supported");
    return std::make_unique<SplitPreTokenizer>(*p);
  }
  if (type == "ByteLevel")
    return std::make_unique<ByteLevelPreTokenizer>(bool_field(j, "add_prefix_space", true, at),
                                                   bool_field(j, "use_regex", true, at));
  if (type == "Metaspace") {
    static const std::string kDefault = "\xE2\x96\x81";  // U+2581
    std::string rep = string_field(j, "replacement", at, &kDefault);
    if (rep.empty()) at.at("replacement").fail("must not be empty");
    PrependScheme scheme = PrependScheme::kAlways;
    if (const json* s = find_field(j, "prepend_scheme"); s && !s->is_null()) {
      const std::string v = string_field(j, "prepend_scheme", at);
      if (v == "always")
        scheme = PrependScheme::kAlways;
      else if (v == "first")
        scheme = PrependScheme::kFirst;
      else if (v == "never")
        scheme = PrependScheme::kNever;
      else
        at.at("prepend_scheme").fail("must be \"always\", \"first\" or \"never\", not '", v, "'");
    } else if (!bool_field(j, "add_prefix_space", true, at)) {
      scheme = PrependScheme::kNever;  // files older than prepend_scheme
    }
    return std::make_unique<MetaspacePreTokenizer>(std::move(rep), scheme,
                                                   bool_field(j, "split", true, at));
  }
  if (word_level && type == "Whitespace") return std::make_unique<WhitespacePreTokenizer>(true);
  if (word_level && type == "WhitespaceSplit") return std::make_unique<WhitespacePreTokenizer>(false);
  at.at("type").fail("unsupported pre-tokenizer '", type,
                     "' (supported: Sequence, Split, ByteLevel, Metaspace",
                     word_level ? ", Whitespace, WhitespaceSplit" : "; Whitespace(Split) only for WordLevel models",
                     ")");
}

}  // namespace ressa::io::tok
