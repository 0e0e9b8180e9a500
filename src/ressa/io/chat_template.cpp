// ChatTemplate: finding a model directory's chat template, the --prompt-format override, ressa's
// own template, and rendering messages with them (io/jinja does the Jinja).
#include "ressa/io/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace ressa::io {

using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& where, const std::string& msg) {
  throw std::runtime_error("[ChatTemplate] " + where + ": " + msg);
}

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) fail(p.string(), "cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail(p.string(), "read error");
  return ss.str();
}

json parse_json(const fs::path& p) {
  try {
    return json::parse(read_file(p));
  } catch (const json::exception& e) {
    fail(p.string(), std::string("not valid JSON: ") + e.what());
  }
}

// A Jinja string literal holding `s` exactly.
std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\\' || c == '\'') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out + "'";
}

const char* const kRessaDefault =
    "{#- ressa's prompt: BOS, then for each user turn its parts (the image token, the question) and for\n"
    "    each assistant turn its answer and EOS, all separated by single spaces, as ressa's word-level\n"
    "    tokenizer reads them. -#}\n"
    "{%- if bos_token is not defined -%}\n"
    "  {{- raise_exception('this template needs bos_token') -}}\n"
    "{%- endif -%}\n"
    "{{- bos_token -}}\n"
    "{%- for message in messages -%}\n"
    "  {%- if message['role'] == 'user' or message['role'] == 'assistant' -%}\n"
    "    {%- if message['content'] is string -%}\n"
    "      {{- ' ' + message['content'] -}}\n"
    "    {%- else -%}\n"
    "      {%- for part in message['content'] -%}\n"
    "        {%- if part['type'] == 'image' and message['role'] == 'user' -%}\n"
    "          {{- ' <image>' -}}\n"
    "        {%- elif part['type'] == 'text' -%}\n"
    "          {{- ' ' + part['text'] -}}\n"
    "        {%- else -%}\n"
    "          {{- raise_exception('ressa models take image parts in user turns and text parts only') -}}\n"
    "        {%- endif -%}\n"
    "      {%- endfor -%}\n"
    "    {%- endif -%}\n"
    "    {%- if message['role'] == 'assistant' -%}\n"
    "      {%- if eos_token is not defined -%}\n"
    "        {{- raise_exception('an assistant turn needs eos_token') -}}\n"
    "      {%- endif -%}\n"
    "      {{- ' ' + eos_token -}}\n"
    "    {%- endif -%}\n"
    "  {%- else -%}\n"
    "    {{- raise_exception('ressa models take user and assistant messages only') -}}\n"
    "  {%- endif -%}\n"
    "{%- endfor -%}\n";

}  // namespace

ChatTemplate ChatTemplate::from_string(const std::string& source, const std::string& where,
                                       const jinja::Limits& limits) {
  ChatTemplate t;
  t.source_ = source;
  t.where_ = where;
  t.template_ = jinja::Template::parse(source, where, limits);
  return t;
}

ChatTemplate ChatTemplate::load_dir(const std::string& model_dir, const jinja::Limits& limits) {
  const fs::path dir(model_dir);
  const fs::path jinja_file = dir / "chat_template.jinja";
  const fs::path json_file = dir / "chat_template.json";
  const fs::path tok_file = dir / "tokenizer_config.json";

  json tok_config;
  if (fs::exists(tok_file)) {
    tok_config = parse_json(tok_file);
    if (!tok_config.is_object()) fail(tok_file.string(), "expected a JSON object");
  }

  std::string source, where;
  if (fs::exists(jinja_file)) {
    source = read_file(jinja_file);
    where = jinja_file.string();
  } else if (fs::exists(json_file)) {
    const json j = parse_json(json_file);
    if (!j.is_object() || !j.contains("chat_template") || !j["chat_template"].is_string())
      fail(json_file.string(), "expected {\"chat_template\": \"...\"}");
    source = j["chat_template"].get<std::string>();
    where = json_file.string();
  } else if (tok_config.is_object() && tok_config.contains("chat_template") &&
             !tok_config["chat_template"].is_null()) {
    const json& ct = tok_config["chat_template"];
    where = tok_file.string();
    if (ct.is_string()) {
      source = ct.get<std::string>();
    } else if (ct.is_array()) {
      bool found = false;
      for (const json& named : ct) {
        if (!named.is_object() || !named.contains("name") || !named.contains("template") ||
            !named["name"].is_string() || !named["template"].is_string())
          fail(where, "chat_template list entries must be {\"name\": ..., \"template\": ...}");
        if (named["name"] == "default") {
          source = named["template"].get<std::string>();
          found = true;
        }
      }
      if (!found) fail(where, "chat_template is a list of named templates without one named \"default\"");
    } else {
      fail(where, "chat_template must be a string or a list of named templates");
    }
  } else {
    fail(model_dir, "no chat template (looked for chat_template.jinja, chat_template.json and "
                    "\"chat_template\" in tokenizer_config.json)");
  }

  ChatTemplate t = from_string(source, where, limits);
  if (tok_config.is_object()) {
    for (const char* name : {"bos_token", "eos_token", "unk_token", "pad_token"}) {
      if (!tok_config.contains(name) || tok_config[name].is_null()) continue;
      const json& v = tok_config[name];
      if (v.is_string()) {
        t.vars_[name] = v;
      } else if (v.is_object() && v.contains("content") && v["content"].is_string()) {
        t.vars_[name] = v["content"];
      } else {
        fail(tok_file.string(), std::string(name) + " must be a string or {\"content\": \"...\"}");
      }
    }
  }
  return t;
}

ChatTemplate ChatTemplate::from_format(const std::string& format) {
  const std::string where = "--prompt-format";
  std::string src =
      "{%- if messages|length != 1 or messages[0]['role'] != 'user' -%}"
      "{{ raise_exception('a --prompt-format prompt takes exactly one user message') }}{%- endif -%}"
      "{%- set content = messages[0]['content'] -%}";
  std::string literal;
  bool has_image = false, has_question = false;
  auto flush = [&] {
    if (!literal.empty()) src += "{{ " + quote(literal) + " }}";
    literal.clear();
  };
  for (size_t i = 0; i < format.size(); ++i) {
    const char c = format[i];
    if (c == '\\') {
      const char e = i + 1 < format.size() ? format[i + 1] : '\0';
      if (e == 'n') literal += '\n';
      else if (e == 't') literal += '\t';
      else if (e == '\\') literal += '\\';
      else fail(where, "unknown escape at offset " + std::to_string(i) + " (use \\n, \\t or \\\\)");
      ++i;
    } else if (c == '{' && i + 1 < format.size() && format[i + 1] == '{') {
      literal += '{';
      ++i;
    } else if (c == '}' && i + 1 < format.size() && format[i + 1] == '}') {
      literal += '}';
      ++i;
    } else if (c == '{') {
      const size_t end = format.find('}', i);
      if (end == std::string::npos) fail(where, "'{' at offset " + std::to_string(i) + " is never closed");
      const std::string name = format.substr(i + 1, end - i - 1);
      flush();
      if (name == "image") {
        has_image = true;
        src += "{%- if content is not string -%}"
               "{%- for part in content|selectattr('type', 'equalto', 'image') -%}"
               "{{ image_token if image_token is defined else '<image>' }}{%- endfor -%}{%- endif -%}";
      } else if (name == "question") {
        has_question = true;
        src += "{%- if content is string -%}{{ content }}{%- else -%}"
               "{%- for part in content|selectattr('type', 'equalto', 'text') -%}"
               "{%- if not loop.first -%}{{ ' ' }}{%- endif -%}{{ part['text'] }}{%- endfor -%}{%- endif -%}";
      } else if (name == "bos") {
        src += "{{ bos_token }}";
      } else {
        fail(where, "unknown placeholder {" + name + "} (known: {image}, {question}, {bos}; write {{ for '{')");
      }
      i = end;
    } else if (c == '}') {
      fail(where, "'}' at offset " + std::to_string(i) + " without '{' (write }} for '}')");
    } else {
      literal += c;
    }
  }
  flush();
  if (!has_question) fail(where, "the format has no {question}");
  if (!has_image)
    src += "{%- if content is not string and (content|selectattr('type', 'equalto', 'image')|length) > 0 -%}"
           "{{ raise_exception('the message has an image but the --prompt-format has no {image}') }}{%- endif -%}";
  return from_string(src, where);
}

const std::string& ChatTemplate::ressa_default_source() {
  static const std::string s = kRessaDefault;
  return s;
}

ChatTemplate ChatTemplate::ressa_default() { return from_string(ressa_default_source(), "ressa_default"); }

std::string ChatTemplate::render(const json& messages, bool add_generation_prompt, const json& extra) const {
  if (!messages.is_array()) fail(where_, "messages must be a JSON list");
  if (!extra.is_object()) fail(where_, "extra variables must be a JSON object");
  json vars = vars_;
  for (auto it = extra.begin(); it != extra.end(); ++it) vars[it.key()] = it.value();
  vars["messages"] = messages;
  vars["add_generation_prompt"] = add_generation_prompt;
  return template_.render(vars);
}

}  // namespace ressa::io
