// JSONL reader/writer for VQA dataset directories (format documented in dataset.h and
// docs/data.md). Validation happens here once, so later stages can trust every field.
#include "ressa/data/dataset.h"

#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"

namespace ressa::data {

namespace {
using nlohmann::json;
constexpr const char* kRequired[] = {"id", "image", "question", "answer", "family"};

// Empty string when `p` is an acceptable dataset image path, else what is wrong with it.
std::string bad_image_path(const std::string& p) {
  if (p.front() == '/' || p.front() == '\\') return "image path '" + p + "' must be relative";
  if (p.find('\0') != std::string::npos) return "image path contains a NUL byte";
  size_t start = 0;
  while (start <= p.size()) {
    size_t end = p.find_first_of("/\\", start);
    if (end == std::string::npos) end = p.size();
    if (p.compare(start, end - start, "..") == 0)
      return "image path '" + p + "' must not contain '..'";
    start = end + 1;
  }
  return "";
}

// Empty string when `ex` is valid, else the first problem found.
std::string validate(const VqaExample& ex) {
  const std::string* fields[] = {&ex.id, &ex.image, &ex.question, &ex.answer, &ex.family};
  for (size_t i = 0; i < 5; ++i)
    if (fields[i]->empty()) return std::string("field '") + kRequired[i] + "' is empty";
  return bad_image_path(ex.image);
}
}  // namespace

std::vector<VqaExample> read_jsonl(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("[read_jsonl] ", path, ": file not found");
  return parse_jsonl(read_file(path), path);
}

std::vector<VqaExample> parse_jsonl(const std::string& text, const std::string& path) {
  std::vector<VqaExample> out;
  std::unordered_set<std::string> ids;
  size_t pos = 0;
  for (size_t line_no = 1; pos < text.size(); ++line_no) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    auto where = [&]() { return path + ":" + std::to_string(line_no) + ": "; };
    json j = json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded()) fail("[read_jsonl] ", where(), "invalid JSON");
    if (!j.is_object())
      fail("[read_jsonl] ", where(), "expected a JSON object, got ", j.type_name());
    VqaExample ex;
    std::string* dst[] = {&ex.id, &ex.image, &ex.question, &ex.answer, &ex.family};
    for (size_t i = 0; i < 5; ++i) {
      auto it = j.find(kRequired[i]);
      if (it == j.end()) fail("[read_jsonl] ", where(), "missing field '", kRequired[i], "'");
      if (!it->is_string())
        fail("[read_jsonl] ", where(), "field '", kRequired[i], "' must be a string, got ",
             it->type_name());
      *dst[i] = it->get<std::string>();
    }
    if (auto it = j.find("sources"); it != j.end()) {
      if (!it->is_array()) fail("[read_jsonl] ", where(), "field 'sources' must be an array");
      for (const auto& s : *it) {
        if (!s.is_string()) fail("[read_jsonl] ", where(), "field 'sources' must hold strings");
        ex.sources.push_back(s.get<std::string>());
      }
    }
    if (std::string bad = validate(ex); !bad.empty()) fail("[read_jsonl] ", where(), bad);
    if (!ids.insert(ex.id).second) fail("[read_jsonl] ", where(), "duplicate id '", ex.id, "'");
    out.push_back(std::move(ex));
  }
  return out;
}

void write_jsonl(const std::string& path, const std::vector<VqaExample>& examples) {
  std::string out;
  std::unordered_set<std::string> ids;
  for (size_t i = 0; i < examples.size(); ++i) {
    const VqaExample& ex = examples[i];
    if (std::string bad = validate(ex); !bad.empty())
      fail_arg("[write_jsonl] ", path, ": example ", i, ": ", bad);
    if (!ids.insert(ex.id).second)
      fail_arg("[write_jsonl] ", path, ": example ", i, ": duplicate id '", ex.id, "'");
    nlohmann::ordered_json j = {{"id", ex.id},
                                {"image", ex.image},
                                {"question", ex.question},
                                {"answer", ex.answer},
                                {"family", ex.family}};
    if (!ex.sources.empty()) j["sources"] = ex.sources;
    try {
      out += j.dump();
    } catch (const nlohmann::json::exception& e) {  // e.g. invalid UTF-8 in a string
      fail_arg("[write_jsonl] ", path, ": example ", i, ": ", e.what());
    }
    out += '\n';
  }
  write_file_atomic(path, out);
}

std::vector<VqaExample> read_split(const std::string& dataset_dir, const std::string& split) {
  RESSA_CHECK_ARG(split == "train" || split == "val" || split == "test", "[read_split] split '",
                  split, "' must be train, val or test");
  const std::string path = (std::filesystem::path(dataset_dir) / (split + ".jsonl")).string();
  if (!std::filesystem::is_regular_file(path))
    fail("[read_split] ", path, ": split file not found (expected ", split,
         ".jsonl in dataset directory ", dataset_dir, ")");
  return read_jsonl(path);
}

std::string image_path(const std::string& dataset_dir, const VqaExample& ex) {
  return (std::filesystem::path(dataset_dir) / ex.image).string();
}

}  // namespace ressa::data
