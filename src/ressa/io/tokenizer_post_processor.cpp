// TemplateProcessing as Hugging Face tokenizers applies it to one sequence; the pair template
// is validated but ressa encodes single sequences only.
#include "ressa/io/tokenizer_post_processor.h"

#include <map>
#include <string>

namespace ressa::io::tok {
namespace {
// Parses a template list; returns its pieces ({} for the sequence) and checks every SpecialToken
// names an entry of special_tokens.
std::vector<std::vector<int64_t>> parse_template(const json& list, const JsonAt& at,
                                                 const std::map<std::string, std::vector<int64_t>>& sp,
                                                 const char* allowed_seqs) {
  if (!list.is_array()) at.fail("must be an array");
  std::vector<std::vector<int64_t>> out;
  for (size_t i = 0; i < list.size(); ++i) {
    const json& item = list[i];
    const JsonAt ia = at.at(i);
    if (!item.is_object() || item.size() != 1) ia.fail("must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    if (const json* s = find_field(item, "SpecialToken")) {
      const std::string id = string_field(*s, "id", ia.at("SpecialToken"));
      auto it = sp.find(id);
      if (it == sp.end()) ia.at("SpecialToken.id").fail("'", id, "' is not in special_tokens");
      out.push_back(it->second);
    } else if (const json* q = find_field(item, "Sequence")) {
      const std::string id = string_field(*q, "id", ia.at("Sequence"));
      if (id.size() != 1 || std::string(allowed_seqs).find(id) == std::string::npos)
        ia.at("Sequence.id").fail("must be one of ", allowed_seqs, ", not '", id, "'");
      out.emplace_back();
    } else {
      ia.fail("must be {\"SpecialToken\": ...} or {\"Sequence\": ...}");
    }
  }
  return out;
}

std::unique_ptr<PostProcessor> parse_template_processing(const json& j, const JsonAt& at,
                                                         int64_t n_ids) {
  std::map<std::string, std::vector<int64_t>> sp;
  if (const json* st = find_field(j, "special_tokens"); st && !st->is_null()) {
    if (!st->is_object()) at.at("special_tokens").fail("must be an object");
    for (auto it = st->begin(); it != st->end(); ++it) {
      const JsonAt sa = at.at("special_tokens").at(it.key());
      const json* ids = it->is_object() ? find_field(*it, "ids") : nullptr;
      if (!ids || !ids->is_array()) sa.at("ids").fail("must be an array of ids");
      std::vector<int64_t> v;
      for (const json& id : *ids) {
        if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= n_ids)
          sa.at("ids").fail("id ", id.dump(), " outside [0, ", n_ids, ")");
        v.push_back(id.get<int64_t>());
      }
      sp[it.key()] = std::move(v);
    }
  }
  const json* single = find_field(j, "single");
  const json* pair = find_field(j, "pair");
  if (!single) at.at("single").fail("missing");
  auto tpl = parse_template(*single, at.at("single"), sp, "A");
  if (pair && !pair->is_null()) parse_template(*pair, at.at("pair"), sp, "AB");
  size_t seqs = 0;
  for (const auto& p : tpl) seqs += p.empty();
  if (seqs != 1) at.at("single").fail("must hold the sequence $A exactly once");
  return std::make_unique<PostProcessor>(std::move(tpl));
}
}  // namespace

void PostProcessor::process(std::vector<int64_t>& ids, bool add_special_tokens) const {
  if (!add_special_tokens) return;
  std::vector<int64_t> out;
  for (const auto& piece : single_) {
    if (piece.empty())
      out.insert(out.end(), ids.begin(), ids.end());
    else
      out.insert(out.end(), piece.begin(), piece.end());
  }
  ids.swap(out);
}

std::unique_ptr<PostProcessor> parse_post_processor(const json& j, const JsonAt& at, int64_t n_ids) {
  if (j.is_null()) return nullptr;
  const std::string type = type_of(j, at);
  if (type == "ByteLevel") return nullptr;  // only adjusts offsets, which ressa does not return
  if (type == "TemplateProcessing") return parse_template_processing(j, at, n_ids);
  if (type == "Sequence") {
    const json* list = find_field(j, "processors");
    if (!list || !list->is_array()) at.at("processors").fail("must be an array");
    std::unique_ptr<PostProcessor> found;
    for (size_t i = 0; i < list->size(); ++i) {
      auto p = parse_post_processor((*list)[i], at.at("processors").at(i), n_ids);
      if (p && found) at.at("processors").fail("more than one TemplateProcessing is not supported");
      if (p) found = std::move(p);
    }
    return found;
  }
  at.at("type").fail("unsupported post-processor '", type,
                     "' (supported: TemplateProcessing, ByteLevel, Sequence of those)");
}

}  // namespace ressa::io::tok
