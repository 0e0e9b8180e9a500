// WordLevel tokenizer.json: validation on load, HF-compatible save, encode/decode.
#include "ressa/io/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"

namespace ressa::io {

namespace {
using nlohmann::json;
const char* const kSpecials[5] = {"<pad>", "<unk>", "<s>", "</s>", "<image>"};

enum class CharClass { kSpace, kWord, kOther };
CharClass char_class(unsigned char c) {
  if (c == ' ' || (c >= '\t' && c <= '\r')) return CharClass::kSpace;
  if (std::isalnum(c) || c == '_' || c >= 0x80) return CharClass::kWord;  // >= 0x80: UTF-8
  return CharClass::kOther;
}

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

// HF "Whitespace" (\w+|[^\w\s]+) or "WhitespaceSplit" (\S+) pre-tokenization.
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

int64_t json_id(const json& v, const std::string& what, const std::string& where) {
  if (!v.is_number_integer())
    fail("[Tokenizer::load] ", where, ": ", what, " must be an integer id");
  return v.get<int64_t>();
}

// Optional typed fields: nlohmann's value() would throw a json::type_error that names neither
// the file nor the field.
std::string string_field(const json& obj, const char* key, const std::string& fallback,
                         const std::string& what, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_string()) fail("[Tokenizer::load] ", where, ": ", what, " must be a string");
  return it->get<std::string>();
}
bool bool_field(const json& obj, const char* key, bool fallback, const std::string& what,
                const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end()) return fallback;
  if (!it->is_boolean()) fail("[Tokenizer::load] ", where, ": ", what, " must be true or false");
  return it->get<bool>();
}

// A short description of an unsupported JSON value for error messages: its "type" when it has
// one, else its JSON type (dumping a whole, possibly deeply nested, value is not useful).
std::string brief(const json& v) {
  if (v.is_object()) {
    auto t = v.find("type");
    if (t != v.end() && t->is_string() && t->get_ref<const std::string&>().size() <= 64)
      return "{\"type\": \"" + t->get<std::string>() + "\", ...}";
  }
  return v.type_name();
}
}  // namespace

void Tokenizer::finish(const std::string& where) {
  const int64_t n = vocab_size();
  is_special_.assign(size_t(n), false);
  for (const Added& a : added_) is_special_[size_t(a.id)] = a.special;
  int64_t* ids[5] = {&pad_id_, &unk_id_, &bos_id_, &eos_id_, &image_id_};
  for (int i = 0; i < 5; ++i) {
    auto it = std::find_if(added_.begin(), added_.end(),
                           [&](const Added& a) { return a.content == kSpecials[i]; });
    if (it == added_.end())
      fail("[Tokenizer::load] ", where, ": required special token '", kSpecials[i],
           "' missing from added_tokens");
    *ids[i] = it->id;
  }
  auto unk = tok_to_id_.find(unk_token_);
  if (unk == tok_to_id_.end())
    fail("[Tokenizer::load] ", where, ": model.unk_token '", unk_token_, "' is not in the vocab");
  unk_id_ = unk->second;
  match_order_.resize(added_.size());
  for (size_t i = 0; i < added_.size(); ++i) match_order_[i] = i;
  std::stable_sort(match_order_.begin(), match_order_.end(), [&](size_t a, size_t b) {
    return added_[a].content.size() > added_[b].content.size();
  });
}

Tokenizer Tokenizer::build_word_level(const std::vector<std::string>& words) {
  std::vector<std::string> sorted = words;
  for (const std::string& w : sorted) {
    std::vector<std::string> parts;
    split_words(w, true, parts);
    RESSA_CHECK_ARG(parts.size() == 1 && parts[0] == w && ascii_lower(w) == w,
                    "[Tokenizer::build_word_level] word '", w,
                    "' is not a single lower-case pre-token (letters/digits/_ or punctuation)");
  }
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  Tokenizer t;
  for (int i = 0; i < 5; ++i) {
    t.added_.push_back({kSpecials[i], i, true, false});
    t.id_to_tok_.push_back(kSpecials[i]);
  }
  for (const std::string& w : sorted) t.id_to_tok_.push_back(w);
  for (size_t i = 0; i < t.id_to_tok_.size(); ++i) t.tok_to_id_[t.id_to_tok_[i]] = int64_t(i);
  t.finish("build_word_level");
  return t;
}

Tokenizer Tokenizer::load(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("[Tokenizer::load] ", path, ": file not found");
  return parse(read_file(path), path);
}

Tokenizer Tokenizer::parse(const std::string& text, const std::string& path) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) fail("[Tokenizer::load] ", path, ": invalid JSON");
  if (!root.is_object()) fail("[Tokenizer::load] ", path, ": top level must be a JSON object");
  auto model = root.find("model");
  if (model == root.end() || !model->is_object())
    fail("[Tokenizer::load] ", path, ": missing object 'model'");
  const std::string type = string_field(*model, "type", "<missing>", "model.type", path);
  if (type != "WordLevel")
    fail("[Tokenizer::load] ", path, ": unsupported tokenizer model type '", type,
         "' (ressa supports only WordLevel)");
  auto vocab = model->find("vocab");
  if (vocab == model->end() || !vocab->is_object())
    fail("[Tokenizer::load] ", path, ": model.vocab must be an object {token: id}");

  Tokenizer t;
  std::unordered_map<int64_t, std::string> by_id;
  auto add = [&](const std::string& tok, int64_t id, const char* what) {
    if (auto it = t.tok_to_id_.find(tok); it != t.tok_to_id_.end()) {
      if (it->second != id)
        fail("[Tokenizer::load] ", path, ": ", what, " '", tok, "' has id ", id,
             " but the vocab gives it id ", it->second);
      return;
    }
    if (auto it = by_id.find(id); it != by_id.end())
      fail("[Tokenizer::load] ", path, ": duplicate id ", id, " for '", it->second, "' and '", tok,
           "'");
    t.tok_to_id_[tok] = id;
    by_id[id] = tok;
  };
  for (auto it = vocab->begin(); it != vocab->end(); ++it)
    add(it.key(), json_id(it.value(), "model.vocab['" + it.key() + "']", path), "vocab token");

  auto added = root.find("added_tokens");
  if (added != root.end() && !added->is_null()) {
    if (!added->is_array()) fail("[Tokenizer::load] ", path, ": added_tokens must be an array");
    for (const json& a : *added) {
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
          !a.contains("id"))
        fail("[Tokenizer::load] ", path, ": each added token needs string 'content' and 'id'");
      Added tok;
      tok.content = a["content"].get<std::string>();
      tok.id = json_id(a["id"], "added token '" + tok.content + "' id", path);
      tok.special = bool_field(a, "special", false, "added token '" + tok.content + "' special", path);
      tok.normalized =
          bool_field(a, "normalized", false, "added token '" + tok.content + "' normalized", path);
      add(tok.content, tok.id, "added token");
      t.added_.push_back(tok);
    }
  }
  const int64_t n = int64_t(by_id.size());
  for (const auto& [id, tok] : by_id)
    if (id < 0 || id >= n)
      fail("[Tokenizer::load] ", path, ": id ", id, " of '", tok, "' outside [0, ", n,
           ") (ids must be dense)");
  t.id_to_tok_.resize(size_t(n));
  for (const auto& [id, tok] : by_id) t.id_to_tok_[size_t(id)] = tok;
  std::sort(t.added_.begin(), t.added_.end(),
            [](const Added& a, const Added& b) { return a.id < b.id; });

  const json& norm = root.value("normalizer", json());
  if (norm.is_null())
    t.lowercase_ = false;
  else if (norm.is_object() && string_field(norm, "type", "", "normalizer.type", path) == "Lowercase")
    t.lowercase_ = true;
  else
    fail("[Tokenizer::load] ", path, ": unsupported normalizer ", brief(norm),
         " (expected null or {\"type\":\"Lowercase\"})");
  const json& pre = root.value("pre_tokenizer", json());
  const std::string pre_type =
      pre.is_object() ? string_field(pre, "type", "", "pre_tokenizer.type", path) : "";
  if (pre_type == "Whitespace")
    t.pre_tok_ = PreTok::kWhitespace;
  else if (pre_type == "WhitespaceSplit")
    t.pre_tok_ = PreTok::kWhitespaceSplit;
  else
    fail("[Tokenizer::load] ", path, ": unsupported pre_tokenizer ", brief(pre),
         " (expected Whitespace or WhitespaceSplit)");
  if (!root.value("post_processor", json()).is_null())
    fail("[Tokenizer::load] ", path,
         ": unsupported post_processor (must be null; ressa adds "
         "<s>/</s> itself)");
  if (auto u = model->find("unk_token"); u != model->end()) {
    if (!u->is_string()) fail("[Tokenizer::load] ", path, ": model.unk_token must be a string");
    t.unk_token_ = u->get<std::string>();
  }
  t.finish(path);
  return t;
}

void Tokenizer::save(const std::string& path) const {
  using ojson = nlohmann::ordered_json;
  ojson added = ojson::array();
  for (const Added& a : added_)
    added.push_back({{"id", a.id},
                     {"content", a.content},
                     {"single_word", false},
                     {"lstrip", false},
                     {"rstrip", false},
                     {"normalized", a.normalized},
                     {"special", a.special}});
  ojson vocab = ojson::object();
  for (size_t i = 0; i < id_to_tok_.size(); ++i) vocab[id_to_tok_[i]] = int64_t(i);
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = lowercase_ ? ojson{{"type", "Lowercase"}} : ojson(nullptr);
  j["pre_tokenizer"] = {
      {"type", pre_tok_ == PreTok::kWhitespace ? "Whitespace" : "WhitespaceSplit"}};
  j["post_processor"] = nullptr;
  j["decoder"] = nullptr;
  j["model"] = {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", unk_token_}};
  write_file_atomic(path, j.dump(2) + "\n");
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const {
  std::vector<int64_t> out;
  std::vector<std::string> words;
  const std::string lowered = ascii_lower(text);  // same length: positions line up
  auto flush = [&](size_t from, size_t to) {
    words.clear();
    split_words(lowercase_ ? lowered.substr(from, to - from) : text.substr(from, to - from),
                pre_tok_ == PreTok::kWhitespace, words);
    for (const std::string& w : words) {
      auto it = tok_to_id_.find(w);
      out.push_back(it == tok_to_id_.end() ? unk_id_ : it->second);
    }
  };
  // Added tokens are matched first (leftmost, then longest), like HF's AddedVocabulary.
  size_t seg = 0, i = 0;
  while (i < text.size()) {
    const Added* hit = nullptr;
    for (size_t k : match_order_) {
      const Added& a = added_[k];
      const std::string& src = a.normalized && lowercase_ ? lowered : text;
      if (!a.content.empty() && src.compare(i, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    }
    if (!hit) {
      ++i;
      continue;
    }
    flush(seg, i);
    out.push_back(hit->id);
    i += hit->content.size();
    seg = i;
  }
  flush(seg, text.size());
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::string out;
  for (int64_t id : ids) {
    const std::string& tok = id_to_token(id);
    if (skip_special && is_special_[size_t(id)]) continue;
    if (!out.empty()) out += ' ';
    out += tok;
  }
  return out;
}

std::optional<int64_t> Tokenizer::find(const std::string& tok) const {
  auto it = tok_to_id_.find(tok);
  if (it == tok_to_id_.end()) return std::nullopt;
  return it->second;
}

int64_t Tokenizer::token_to_id(const std::string& tok) const {
  auto id = find(tok);
  RESSA_CHECK_ARG(id.has_value(), "[Tokenizer::token_to_id] token '", tok, "' not in vocab");
  return *id;
}

const std::string& Tokenizer::id_to_token(int64_t id) const {
  RESSA_CHECK_ARG(id >= 0 && id < vocab_size(), "[Tokenizer::id_to_token] id ", id, " outside [0, ",
                  vocab_size(), ")");
  return id_to_tok_[size_t(id)];
}

}  // namespace ressa::io
