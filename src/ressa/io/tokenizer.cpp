// tokenizer.json loading (validation, component construction, tokenizer_config.json specials),
// the encode/decode driver over the pipeline stages, and WordLevel save.
#include "ressa/io/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/io/tokenizer_bpe.h"
#include "ressa/io/tokenizer_decoder.h"
#include "ressa/io/tokenizer_json.h"
#include "ressa/io/tokenizer_model.h"
#include "ressa/io/tokenizer_normalizer.h"
#include "ressa/io/tokenizer_post_processor.h"
#include "ressa/io/tokenizer_pretokenizer.h"

namespace ressa::io {

namespace {
using nlohmann::json;
using tok::JsonAt;
const char* const kSpecials[5] = {"<pad>", "<unk>", "<s>", "</s>", "<image>"};

int64_t json_id(const json& v, const std::string& what, const std::string& where) {
  if (!v.is_number_integer())
    fail("[Tokenizer::load] ", where, ": ", what, " must be an integer id");
  return v.get<int64_t>();
}

// transformers' clean_up_tokenization: no space before punctuation and English contractions.
std::string clean_up_tokenization(std::string s) {
  static const std::pair<const char*, const char*> kRules[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  for (const auto& [from, to] : kRules) {
    const std::string f(from), t(to);
    for (size_t k = 0; (k = s.find(f, k)) != std::string::npos; k += t.size()) s.replace(k, f.size(), t);
  }
  return s;
}

// A special token named in tokenizer_config.json: null, "content" or {"content": ...}.
std::optional<std::string> config_token(const json& cfg, const char* key, const JsonAt& at) {
  const json* v = tok::find_field(cfg, key);
  if (!v || v->is_null()) return std::nullopt;
  if (v->is_string()) return v->get<std::string>();
  if (v->is_object()) return tok::string_field(*v, "content", at.at(key));
  at.at(key).fail("must be a string, {\"content\": ...} or null, not ", v->type_name());
}
}  // namespace

int64_t Tokenizer::special(const std::optional<int64_t>& id, const char* what) {
  RESSA_CHECK_ARG(id.has_value(), "[Tokenizer::", what, "] the tokenizer has no such token");
  return *id;
}

Tokenizer Tokenizer::build_word_level(const std::vector<std::string>& words) {
  std::vector<std::string> sorted = words;
  for (const std::string& w : sorted) {
    std::vector<std::string> parts;
    tok::split_words(w, true, parts);
    RESSA_CHECK_ARG(parts.size() == 1 && parts[0] == w && tok::ascii_lower(w) == w,
                    "[Tokenizer::build_word_level] word '", w,
                    "' is not a single lower-case pre-token (letters/digits/_ or punctuation)");
  }
  std::sort(sorted.begin(), sorted.end());
  sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
  // Built through the same parser as a loaded file, so both behave alike; the source text is
  // dropped so that save() writes the canonical layout.
  json vocab = json::object(), added = json::array();
  for (int i = 0; i < 5; ++i) {
    vocab[kSpecials[i]] = i;
    added.push_back({{"id", i}, {"content", kSpecials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  for (size_t i = 0; i < sorted.size(); ++i) vocab[sorted[i]] = int64_t(5 + i);
  json j = {{"added_tokens", added},
            {"normalizer", {{"type", "Lowercase"}}},
            {"pre_tokenizer", {{"type", "Whitespace"}}},
            {"post_processor", nullptr},
            {"decoder", nullptr},
            {"model", {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", "<unk>"}}}};
  Tokenizer t = parse(j.dump(), "build_word_level");
  t.source_json_.clear();
  return t;
}

Tokenizer Tokenizer::load(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("[Tokenizer::load] ", path, ": file not found");
  return parse(read_file(path), path);
}

Tokenizer Tokenizer::load_dir(const std::string& model_dir) {
  const std::string path = (std::filesystem::path(model_dir) / "tokenizer.json").string();
  const std::string cfg = (std::filesystem::path(model_dir) / "tokenizer_config.json").string();
  if (!std::filesystem::is_regular_file(path)) fail("[Tokenizer::load] ", path, ": file not found");
  if (!std::filesystem::is_regular_file(cfg)) return parse(read_file(path), path);
  return parse(read_file(path), path, read_file(cfg), cfg);
}

Tokenizer Tokenizer::parse(const std::string& text, const std::string& path) {
  return parse(text, path, std::string(), std::string());
}

Tokenizer Tokenizer::parse(const std::string& text, const std::string& path,
                           const std::string& config_text, const std::string& config_path) {
  json root = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (root.is_discarded()) fail("[Tokenizer::load] ", path, ": invalid JSON");
  if (!root.is_object()) fail("[Tokenizer::load] ", path, ": top level must be a JSON object");
  const JsonAt top{path, ""};
  auto model = root.find("model");
  if (model == root.end() || !model->is_object())
    fail("[Tokenizer::load] ", path, ": missing object 'model'");
  const JsonAt mat = top.at("model");
  const std::string type = tok::string_field(*model, "type", mat);
  if (type != "WordLevel" && type != "BPE")
    mat.at("type").fail("unsupported tokenizer model type '", type,
                        "' (ressa supports WordLevel and BPE)");
  const bool word_level = type == "WordLevel";
  auto vocab = model->find("vocab");
  if (vocab == model->end() || !vocab->is_object())
    mat.at("vocab").fail("must be an object {token: id}");

  Tokenizer t;
  t.model_type_ = type;
  std::unordered_map<int64_t, const std::string*> by_id;
  auto add = [&](const std::string& tok, int64_t id, const char* what) {
    if (auto it = t.tok_to_id_.find(tok); it != t.tok_to_id_.end()) {
      if (it->second != id)
        fail("[Tokenizer::load] ", path, ": ", what, " '", tok, "' has id ", id,
             " but the vocab gives it id ", it->second);
      return;
    }
    if (auto it = by_id.find(id); it != by_id.end())
      fail("[Tokenizer::load] ", path, ": duplicate id ", id, " for '", *it->second, "' and '", tok,
           "'");
    auto ins = t.tok_to_id_.emplace(tok, id).first;
    by_id[id] = &ins->first;
  };
  t.tok_to_id_.reserve(vocab->size() + 64);
  for (auto it = vocab->begin(); it != vocab->end(); ++it)
    add(it.key(), json_id(it.value(), "model.vocab['" + it.key() + "']", path), "vocab token");
  // The model's own vocab, before the added tokens join it.
  std::unordered_map<std::string, int64_t> model_vocab;
  if (!word_level) model_vocab = t.tok_to_id_;

  auto added = root.find("added_tokens");
  if (added != root.end() && !added->is_null()) {
    if (!added->is_array()) fail("[Tokenizer::load] ", path, ": added_tokens must be an array");
    for (size_t i = 0; i < added->size(); ++i) {
      const json& a = (*added)[i];
      if (!a.is_object() || !a.contains("content") || !a["content"].is_string() ||
          !a.contains("id"))
        fail("[Tokenizer::load] ", path, ": each added token needs string 'content' and 'id'");
      const JsonAt aat = top.at("added_tokens").at(i);
      tok::AddedToken at;
      at.content = a["content"].get<std::string>();
      at.id = json_id(a["id"], "added token '" + at.content + "' id", path);
      at.special = tok::bool_field(a, "special", false, aat);
      at.normalized = tok::bool_field(a, "normalized", !at.special, aat);
      at.lstrip = tok::bool_field(a, "lstrip", false, aat);
      at.rstrip = tok::bool_field(a, "rstrip", false, aat);
      at.single_word = tok::bool_field(a, "single_word", false, aat);
      add(at.content, at.id, "added token");
      t.added_.push_back(at);
    }
  }
  const int64_t n = int64_t(by_id.size());
  for (const auto& [id, tok] : by_id)
    if (id < 0 || id >= n)
      fail("[Tokenizer::load] ", path, ": id ", id, " of '", *tok, "' outside [0, ", n,
           ") (ids must be dense)");
  t.id_to_tok_.resize(size_t(n));
  for (const auto& [id, tok] : by_id) t.id_to_tok_[size_t(id)] = *tok;
  std::stable_sort(t.added_.begin(), t.added_.end(),
                   [](const tok::AddedToken& a, const tok::AddedToken& b) { return a.id < b.id; });
  t.is_special_.assign(size_t(n), false);
  for (const tok::AddedToken& a : t.added_) t.is_special_[size_t(a.id)] = t.is_special_[size_t(a.id)] || a.special;
  t.raw_added_ = std::make_shared<tok::AddedMatcher>(t.added_, false);
  t.normalized_added_ = std::make_shared<tok::AddedMatcher>(t.added_, true);

  auto field = [&](const char* key) -> const json& {
    static const json kNull;
    auto it = root.find(key);
    return it == root.end() ? kNull : *it;
  };
  t.normalizer_ = tok::parse_normalizer(field("normalizer"), top.at("normalizer"), word_level);
  t.pre_tokenizer_ =
      tok::parse_pre_tokenizer(field("pre_tokenizer"), top.at("pre_tokenizer"), word_level);
  t.post_processor_ = tok::parse_post_processor(field("post_processor"), top.at("post_processor"), n);
  std::unordered_set<std::string> added_contents;
  for (const tok::AddedToken& a : t.added_) added_contents.insert(a.content);
  t.decoder_ = tok::parse_decoder(field("decoder"), top.at("decoder"), added_contents);
  for (const char* key : {"truncation", "padding"})
    if (!field(key).is_null()) top.at(key).fail("must be null (ressa does not truncate or pad)");

  if (word_level) {
    const std::string unk_default = "<unk>";
    const std::string unk = tok::string_field(*model, "unk_token", mat, &unk_default);
    auto u = t.tok_to_id_.find(unk);
    if (u == t.tok_to_id_.end()) mat.at("unk_token").fail("'", unk, "' is not in the vocab");
    std::optional<int64_t>* ids[5] = {&t.pad_id_, &t.unk_id_, &t.bos_id_, &t.eos_id_, &t.image_id_};
    for (int i = 0; i < 5; ++i) {
      auto it = std::find_if(t.added_.begin(), t.added_.end(),
                             [&](const tok::AddedToken& a) { return a.content == kSpecials[i]; });
      if (it == t.added_.end())
        fail("[Tokenizer::load] ", path, ": added_tokens: required special token '", kSpecials[i],
             "' missing");
      *ids[i] = it->id;
    }
    t.unk_id_ = u->second;
    t.model_ = std::make_shared<tok::WordLevelModel>(t.tok_to_id_, u->second);
  } else {
    auto bpe = std::make_shared<tok::BpeModel>(*model, model_vocab, mat);
    t.unk_id_ = bpe->unk_id();
    t.model_ = std::move(bpe);
    t.image_id_ = t.find("<image>");
  }

  if (!config_path.empty()) {
    json cfg = json::parse(config_text, nullptr, false);
    if (cfg.is_discarded()) fail("[Tokenizer::load] ", config_path, ": invalid JSON");
    if (!cfg.is_object()) fail("[Tokenizer::load] ", config_path, ": top level must be a JSON object");
    const JsonAt cat{config_path, ""};
    const std::pair<const char*, std::optional<int64_t>*> names[] = {
        {"bos_token", &t.bos_id_}, {"eos_token", &t.eos_id_}, {"pad_token", &t.pad_id_},
        {"unk_token", &t.unk_id_}};
    for (const auto& [key, id] : names) {
      if (!cfg.contains(key)) continue;  // absent: the tokenizer.json value stays
      const auto name = config_token(cfg, key, cat);
      if (!name) {
        id->reset();
        continue;
      }
      *id = t.find(*name);
      if (!*id) cat.at(key).fail("'", *name, "' is not in the vocab of ", path);
    }
    t.add_bos_token_ = tok::bool_field(cfg, "add_bos_token", false, cat);
    t.add_eos_token_ = tok::bool_field(cfg, "add_eos_token", false, cat);
    t.clean_up_spaces_ = tok::bool_field(cfg, "clean_up_tokenization_spaces", false, cat);
  }
  t.source_json_ = text;
  return t;
}

void Tokenizer::save(const std::string& path) const {
  if (!source_json_.empty()) {
    write_file_atomic(path, source_json_);
    return;
  }
  // build_word_level's layout: Lowercase, Whitespace, WordLevel with <unk>.
  using ojson = nlohmann::ordered_json;
  ojson added = ojson::array();
  for (const tok::AddedToken& a : added_)
    added.push_back({{"id", a.id},
                     {"content", a.content},
                     {"single_word", a.single_word},
                     {"lstrip", a.lstrip},
                     {"rstrip", a.rstrip},
                     {"normalized", a.normalized},
                     {"special", a.special}});
  ojson vocab = ojson::object();
  for (size_t i = 0; i < id_to_tok_.size(); ++i) vocab[id_to_tok_[i]] = int64_t(i);
  ojson j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = ojson{{"type", "Lowercase"}};
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  j["post_processor"] = nullptr;
  j["decoder"] = nullptr;
  j["model"] = {{"type", "WordLevel"}, {"vocab", vocab}, {"unk_token", id_to_tok_[size_t(*unk_id_)]}};
  write_file_atomic(path, j.dump(2) + "\n");
}

std::vector<int64_t> Tokenizer::encode(const std::string& text) const { return encode(text, false); }

std::vector<int64_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  std::vector<int64_t> out;
  out.reserve(text.size() / 3 + 4);
  std::vector<tok::Segment> segs, nsegs;
  std::vector<tok::Piece> pieces;
  raw_added_->split(text, segs);
  for (const tok::Segment& s : segs) {
    if (s.id >= 0) {
      out.push_back(s.id);
      continue;
    }
    if (s.begin == s.end) continue;
    std::string piece = text.substr(s.begin, s.end - s.begin);
    if (normalizer_) normalizer_->normalize(piece);
    if (piece.empty()) continue;
    normalized_added_->split(piece, nsegs);
    for (const tok::Segment& ns : nsegs) {
      if (ns.id >= 0) {
        out.push_back(ns.id);
        continue;
      }
      if (ns.begin == ns.end) continue;
      pieces.clear();
      pieces.push_back({piece.substr(ns.begin, ns.end - ns.begin), s.begin == 0 && ns.begin == 0});
      if (pre_tokenizer_) pre_tokenizer_->split(pieces);
      for (const tok::Piece& p : pieces) model_->tokenize(p.text, out);
    }
  }
  if (post_processor_) post_processor_->process(out, add_special_tokens);
  return out;
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int64_t id : ids) {
    const std::string& tok = id_to_token(id);
    if (skip_special && is_special_[size_t(id)]) continue;
    tokens.push_back(tok);
  }
  std::string out;
  if (decoder_) {
    decoder_->decode_chain(tokens);
    for (const std::string& s : tokens) out += s;
  } else {
    for (const std::string& s : tokens) {
      if (!out.empty()) out += ' ';
      out += s;
    }
  }
  return clean_up_spaces_ ? clean_up_tokenization(std::move(out)) : out;
}

bool Tokenizer::is_special(int64_t id) const {
  return id >= 0 && id < vocab_size() && is_special_[size_t(id)];
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
