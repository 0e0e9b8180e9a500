// Normalizers with the semantics of Hugging Face tokenizers: Prepend adds its text to a
// non-empty input, Replace substitutes every occurrence of a literal string.
#include "ressa/io/tokenizer_normalizer.h"

#include <vector>

namespace ressa::io::tok {
namespace {
class SequenceNormalizer final : public Normalizer {
 public:
  explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts)
      : parts_(std::move(parts)) {}
  void normalize(std::string& text) const override {
    for (const auto& p : parts_) p->normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> parts_;
};

class PrependNormalizer final : public Normalizer {
 public:
  explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
  void normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prefix_);
  }

 private:
  std::string prefix_;
};

class ReplaceNormalizer final : public Normalizer {
 public:
  ReplaceNormalizer(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void normalize(std::string& text) const override { replace_all(text, from_, to_); }
  static void replace_all(std::string& text, const std::string& from, const std::string& to) {
    if (from.empty() || text.find(from) == std::string::npos) return;
    std::string out;
    out.reserve(text.size() + text.size() / 4);
    size_t i = 0;
    for (size_t k; (k = text.find(from, i)) != std::string::npos; i = k + from.size())
      out.append(text, i, k - i).append(to);
    out.append(text, i, std::string::npos);
    text.swap(out);
  }

 private:
  std::string from_, to_;
};

class LowercaseNormalizer final : public Normalizer {
 public:
  void normalize(std::string& text) const override { text = ascii_lower(std::move(text)); }
};
}  // namespace

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

std::unique_ptr<Normalizer> parse_normalizer(const json& j, const JsonAt& at, bool word_level) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, at);
  if (type == "Sequence") {
    const json* list = find_field(j, "normalizers");
    if (!list || !list->is_array()) at.at("normalizers").fail("must be an array");
    std::vector<std::unique_ptr<Normalizer>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      auto p = parse_normalizer((*list)[i], at.at("normalizers").at(i), word_level);
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceNormalizer>(std::move(parts));
  }
  if (type == "Prepend") return std::make_unique<PrependNormalizer>(string_field(j, "prepend", at));
  if (type == "Replace")
    return std::make_unique<ReplaceNormalizer>(string_pattern(j, at), string_field(j, "content", at));
  if (type == "Lowercase" && word_level) return std::make_unique<LowercaseNormalizer>();
  at.at("type").fail("unsupported normalizer '", type,
                     "' (supported: Sequence, Prepend, Replace with a String pattern",
                     word_level ? ", Lowercase" : "; Lowercase only for WordLevel models", ")");
}

}  // namespace ressa::io::tok
