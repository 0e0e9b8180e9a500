// Helpers for reading tokenizer.json components: typed field access whose errors name the file
// and the JSON field, "[Tokenizer::load] <file>: <field>: <what>".
#pragma once
#include <nlohmann/json.hpp>
#include <string>

#include "ressa/core/error.h"

namespace ressa::io::tok {

using nlohmann::json;

// Where a JSON value sits: the file and the dotted field path, e.g. "pre_tokenizer.pretokenizers[1]".
struct JsonAt {
  const std::string& file;
  std::string field;
  JsonAt at(const std::string& key) const { return {file, field.empty() ? key : field + "." + key}; }
  JsonAt at(size_t i) const { return {file, field + "[" + std::to_string(i) + "]"}; }
  template <typename... Args>
  [[noreturn]] void fail(Args&&... args) const {
    ::ressa::fail("[Tokenizer::load] ", file, ": ", field, ": ", std::forward<Args>(args)...);
  }
};

inline const json* find_field(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}
inline std::string string_field(const json& obj, const char* key, const JsonAt& at,
                                const std::string* fallback = nullptr) {
  const json* v = find_field(obj, key);
  if (!v || (v->is_null() && fallback)) {
    if (fallback) return *fallback;
    at.at(key).fail("missing (a string is required)");
  }
  if (!v->is_string()) at.at(key).fail("must be a string, not ", v->type_name());
  return v->get<std::string>();
}
inline bool bool_field(const json& obj, const char* key, bool fallback, const JsonAt& at) {
  const json* v = find_field(obj, key);
  if (!v || v->is_null()) return fallback;
  if (!v->is_boolean()) at.at(key).fail("must be true or false, not ", v->type_name());
  return v->get<bool>();
}
// The "type" of a component object.
inline std::string type_of(const json& obj, const JsonAt& at) {
  if (!obj.is_object()) at.fail("must be an object with a \"type\", not ", obj.type_name());
  return string_field(obj, "type", at);
}
// A Replace pattern {"String": s}; {"Regex": r} is refused.
inline std::string string_pattern(const json& obj, const JsonAt& at) {
  const json* p = find_field(obj, "pattern");
  if (!p || !p->is_object()) at.at("pattern").fail("missing object {\"String\": ...}");
  if (const json* s = find_field(*p, "String"); s && s->is_string()) return s->get<std::string>();
  at.at("pattern").fail("only {\"String\": ...} patterns are supported (got ", p->dump().substr(0, 80),
                        ")");
}

}  // namespace ressa::io::tok
