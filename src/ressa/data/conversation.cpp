// LLaVA conversation file reader (see conversation.h).
#include "ressa/data/conversation.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"

namespace ressa::data {

namespace {
using nlohmann::json;
constexpr const char* kImageMarker = "<image>";

size_t count_markers(const std::string& s) {
  size_t n = 0;
  for (size_t p = s.find(kImageMarker); p != std::string::npos; p = s.find(kImageMarker, p + 1)) ++n;
  return n;
}

// LLaVA's preprocess_multimodal: the marker (and the whitespace around it) leaves the text,
// which is then stripped; the image is placed before it.
std::string without_marker(const std::string& s) {
  const size_t p = s.find(kImageMarker);
  std::string out = s.substr(0, p) + s.substr(p + std::char_traits<char>::length(kImageMarker));
  const char* ws = " \t\r\n";
  const size_t b = out.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return out.substr(b, out.find_last_not_of(ws) - b + 1);
}
}  // namespace

std::vector<Conversation> parse_llava_conversations(const std::string& text, const std::string& where) {
  const json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) fail("[conversations] ", where, ": not valid JSON");
  if (!j.is_array())
    fail("[conversations] ", where, ": expected a JSON list of {id, image, conversations}, got ", j.type_name());
  if (j.empty()) fail("[conversations] ", where, ": the list is empty");
  std::vector<Conversation> out;
  out.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const json& item = j[i];
    Conversation c;
    auto bad = [&](auto&&... what) {
      fail("[conversations] ", where, ": item ", i, c.id.empty() ? std::string() : " (id '" + c.id + "')", ": ",
           what...);
    };
    if (!item.is_object()) bad("expected an object, got ", item.type_name());
    if (auto it = item.find("id"); it != item.end()) {
      if (it->is_string()) c.id = it->get<std::string>();
      else if (it->is_number_integer()) c.id = it->dump();
      else bad("'id' must be a string or an integer, got ", it->type_name());
    }
    if (c.id.empty()) bad("missing or empty 'id'");
    auto img = item.find("image");
    if (img == item.end() || img->is_null())
      bad("no 'image': ressa calibrates, repairs and evaluates on image-text conversations (leave text-only items out)");
    if (!img->is_string()) bad("'image' must be a string (one image per conversation), got ", img->type_name());
    c.image = img->get<std::string>();
    if (c.image.empty() || c.image.find('\0') != std::string::npos) bad("'image' must be a non-empty path");
    auto conv = item.find("conversations");
    if (conv == item.end() || !conv->is_array() || conv->empty()) bad("'conversations' must be a non-empty list");
    size_t markers = 0;
    for (size_t t = 0; t < conv->size(); ++t) {
      const json& turn = (*conv)[t];
      if (!turn.is_object()) bad("conversations[", t, "] must be an object");
      auto from = turn.find("from");
      auto value = turn.find("value");
      if (from == turn.end() || !from->is_string()) bad("conversations[", t, "]: 'from' must be a string");
      if (value == turn.end() || !value->is_string()) bad("conversations[", t, "]: 'value' must be a string");
      const std::string expect = t % 2 == 0 ? "human" : "gpt";
      if (from->get<std::string>() != expect)
        bad("conversations[", t, "]: 'from' is '", from->get<std::string>(), "', expected '", expect,
            "' (turns alternate human, gpt, ... starting with human)");
      std::string v = value->get<std::string>();
      const size_t n = count_markers(v);
      if (n > 0 && t != 0) bad("conversations[", t, "]: the <image> marker must be in the first human turn");
      markers += n;
      if (n == 1) v = without_marker(v);
      if (n == 1 && count_markers(v) != 0) bad("conversations[", t, "]: taking out the <image> marker leaves another one");
      if (v.empty()) bad("conversations[", t, "]: empty text");
      c.turns.push_back({t % 2 == 0 ? "user" : "assistant", std::move(v)});
    }
    if (markers != 1) bad("the first human turn must hold the <image> marker exactly once, found ", markers);
    if (c.turns.back().role != "assistant") bad("the last turn must be a gpt turn (the answer)");
    out.push_back(std::move(c));
  }
  return out;
}

std::vector<Conversation> read_llava_conversations(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("[conversations] ", path, ": file not found");
  return parse_llava_conversations(read_file(path), path);
}

Conversation to_conversation(const VqaExample& ex) {
  return Conversation{ex.id, ex.image, {{"user", ex.question}, {"assistant", ex.answer}}};
}

bool DataSource::is_conversation_file() const { return !std::filesystem::is_directory(path); }

void DataSource::validate() const {
  namespace fs = std::filesystem;
  RESSA_CHECK_ARG(fs::exists(path), "[data] --data ", path,
                  ": not found (a dataset directory or a LLaVA conversation .json file)");
  RESSA_CHECK_ARG(image_folder.empty() || is_conversation_file(),
                  "[data] --image-folder applies to a LLaVA conversation file; ", path,
                  " is a dataset directory (its images are relative to it)");
  RESSA_CHECK_ARG(image_folder.empty() || fs::is_directory(image_folder), "[data] --image-folder ", image_folder,
                  ": directory not found");
}

Samples read_samples(const DataSource& source, const std::string& split) {
  namespace fs = std::filesystem;
  source.validate();
  Samples out;
  if (!source.is_conversation_file()) {
    out.where = (fs::path(source.path) / (split + ".jsonl")).string();
    for (auto& ex : read_split(source.path, split))
      out.items.push_back({to_conversation(ex), image_path(source.path, ex), ex.family});
    return out;
  }
  out.where = source.path;
  const fs::path base = source.image_folder.empty() ? fs::path(source.path).parent_path() : fs::path(source.image_folder);
  for (auto& c : read_llava_conversations(source.path)) {
    const fs::path img(c.image);
    std::string file = img.is_absolute() ? img.string() : (base / img).string();
    out.items.push_back({std::move(c), std::move(file), "conversation"});
  }
  return out;
}

}  // namespace ressa::data
