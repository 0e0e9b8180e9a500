// Decoders with the semantics of Hugging Face tokenizers (as its JavaScript port runs them):
// ByteLevel maps code points back to bytes (invalid UTF-8 becomes U+FFFD) and keeps added tokens
// verbatim; ByteFallback turns runs of <0xXX> tokens into their UTF-8 text (U+FFFD per byte when
// the run is not valid UTF-8); Metaspace turns the replacement back into spaces and drops the
// first token's leading space unless prepend_scheme is "never".
#include "ressa/io/tokenizer_decoder.h"

#include "ressa/io/tokenizer_byte_level.h"
#include "ressa/io/tokenizer_unicode.h"

namespace ressa::io::tok {
namespace {

void replace_all(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty()) return;
  std::string out;
  size_t i = 0;
  for (size_t k; (k = text.find(from, i)) != std::string::npos; i = k + from.size())
    out.append(text, i, k - i).append(to);
  if (i == 0) return;
  out.append(text, i, std::string::npos);
  text.swap(out);
}

// Replaces invalid UTF-8 with U+FFFD, one per maximal invalid subpart (WHATWG / from_utf8_lossy).
std::string utf8_lossy(const std::string& bytes) {
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    size_t len;
    const uint32_t cp = unicode::decode_utf8(bytes, i, &len);
    if (cp != unicode::kInvalid || (len == 3 && bytes.compare(i, 3, "\xEF\xBF\xBD") == 0)) {
      out.append(bytes, i, len);
      i += len;
      continue;
    }
    // Skip the longest prefix of a valid sequence (lead byte plus fitting continuation bytes).
    const uint8_t c = uint8_t(bytes[i]);
    size_t need = c >= 0xF0 && c <= 0xF4 ? 3 : c >= 0xE0 && c <= 0xEF ? 2 : c >= 0xC2 && c <= 0xDF ? 1 : 0;
    size_t k = 1;
    for (; k <= need && i + k < bytes.size(); ++k) {
      const uint8_t d = uint8_t(bytes[i + k]);
      uint8_t lo = 0x80, hi = 0xBF;
      if (k == 1) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      }
      if (d < lo || d > hi) break;
    }
    out += "\xEF\xBF\xBD";
    i += k;
  }
  return out;
}

class SequenceDecoder final : public Decoder {
 public:
  explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (const auto& p : parts_) p->decode_chain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> parts_;
};

class ByteLevelDecoder final : public Decoder {
 public:
  explicit ByteLevelDecoder(std::unordered_set<std::string> added) : added_(std::move(added)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    auto flush = [&] {
      if (!bytes.empty()) out.push_back(utf8_lossy(bytes));
      bytes.clear();
    };
    for (const std::string& t : tokens) {
      if (added_.count(t)) {
        flush();
        out.push_back(t);
        continue;
      }
      for (size_t i = 0; i < t.size();) {
        size_t len;
        const int b = unicode_to_byte(unicode::decode_utf8(t, i, &len));
        if (b >= 0)
          bytes += char(b);
        else
          bytes.append(t, i, len);  // not a byte-level character: kept as it is
        i += len;
      }
    }
    flush();
    tokens.swap(out);
  }

 private:
  std::unordered_set<std::string> added_;
};

class MetaspaceDecoder final : public Decoder {
 public:
  MetaspaceDecoder(std::string rep, bool strip_first) : rep_(std::move(rep)), strip_first_(strip_first) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (size_t i = 0; i < tokens.size(); ++i) {
      replace_all(tokens[i], rep_, " ");
      if (i == 0 && strip_first_ && !tokens[i].empty() && tokens[i][0] == ' ') tokens[i].erase(0, 1);
    }
  }

 private:
  std::string rep_;
  bool strip_first_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(std::string from, std::string to) : from_(std::move(from)), to_(std::move(to)) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    for (std::string& t : tokens) replace_all(t, from_, to_);
  }

 private:
  std::string from_, to_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::vector<std::string> out;
    std::string bytes;
    size_t nbytes = 0;
    auto flush = [&] {
      if (nbytes == 0) return;
      const std::string text = utf8_lossy(bytes);
      if (text == bytes) {
        out.push_back(text);
      } else {
        for (size_t k = 0; k < nbytes; ++k) out.push_back("\xEF\xBF\xBD");
      }
      bytes.clear();
      nbytes = 0;
    };
    for (std::string& t : tokens) {
      int b = -1;
      if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
        auto hex = [](char c) {
          return c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        };
        const int hi = hex(t[3]), lo = hex(t[4]);
        if (hi >= 0 && lo >= 0) b = hi * 16 + lo;
      }
      if (b >= 0) {
        bytes += char(b);
        ++nbytes;
      } else {
        flush();
        out.push_back(std::move(t));
      }
    }
    flush();
    tokens.swap(out);
  }
};

class FuseDecoder final : public Decoder {
 public:
  void decode_chain(std::vector<std::string>& tokens) const override {
    std::string all;
    for (const std::string& t : tokens) all += t;
    tokens.assign(1, std::move(all));
  }
};

class StripDecoder final : public Decoder {
 public:
  StripDecoder(std::string content, size_t start, size_t stop)
      : content_(std::move(content)), start_(start), stop_(stop) {}
  void decode_chain(std::vector<std::string>& tokens) const override {
    const size_t n = content_.size();
    for (std::string& t : tokens) {
      size_t b = 0, e = t.size();
      for (size_t k = 0; k < start_ && b + n <= e && t.compare(b, n, content_) == 0; ++k) b += n;
      for (size_t k = 0; k < stop_ && e >= b + n && t.compare(e - n, n, content_) == 0; ++k) e -= n;
      t = t.substr(b, e - b);
    }
  }

 private:
  std::string content_;
  size_t start_, stop_;
};

size_t count_field(const json& j, const char* key, const JsonAt& at) {
  const json* v = find_field(j, key);
  if (!v || v->is_null()) return 0;
  if (!v->is_number_unsigned()) at.at(key).fail("must be a non-negative integer");
  return v->get<size_t>();
}
}  // namespace

std::unique_ptr<Decoder> parse_decoder(const json& j, const JsonAt& at,
                                       const std::unordered_set<std::string>& added) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, at);
  if (type == "Sequence") {
    const json* list = find_field(j, "decoders");
    if (!list || !list->is_array()) at.at("decoders").fail("must be an array");
    std::vector<std::unique_ptr<Decoder>> parts;
    for (size_t i = 0; i < list->size(); ++i) {
      auto p = parse_decoder((*list)[i], at.at("decoders").at(i), added);
      if (p) parts.push_back(std::move(p));
    }
    return std::make_unique<SequenceDecoder>(std::move(parts));
  }
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>(added);
  if (type == "Metaspace") {
    static const std::string kDefault = "\xE2\x96\x81";
    std::string rep = string_field(j, "replacement", at, &kDefault);
    bool strip_first = true;
    if (const json* s = find_field(j, "prepend_scheme"); s && !s->is_null())
      strip_first = string_field(j, "prepend_scheme", at) != "never";
    else
      strip_first = bool_field(j, "add_prefix_space", true, at);
    return std::make_unique<MetaspaceDecoder>(std::move(rep), strip_first);
  }
  if (type == "Replace")
    return std::make_unique<ReplaceDecoder>(string_pattern(j, at), string_field(j, "content", at));
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    std::string content = string_field(j, "content", at);
    if (content.empty()) at.at("content").fail("must not be empty");
    return std::make_unique<StripDecoder>(std::move(content), count_field(j, "start", at),
                                          count_field(j, "stop", at));
  }
  at.at("type").fail("unsupported decoder '", type,
                     "' (supported: Sequence, ByteLevel, Metaspace, Replace with a String pattern, "
                     "ByteFallback, Fuse, Strip)");
}

}  // namespace ressa::io::tok
