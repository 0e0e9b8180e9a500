// Tests for ressa/io/chat_template and ressa/io/jinja: real llava-family chat templates rendered
// exactly as Hugging Face's Jinja renders them (goldens from tests/reference/
// chat_template_reference.mjs, fixtures in tests/fixtures/chat_templates/), how a model
// directory's template is found, --prompt-format, ressa's own template, error locations, and the
// limits that stop a runaway template.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "ressa/io/chat_template.h"
#include "ressa/io/jinja.h"

#include "error_of.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;
using ressa::io::ChatTemplate;
using ressa::test::TempDir;
namespace jinja = ressa::io::jinja;

namespace {

const fs::path kFixtures = fs::path(RESSA_SOURCE_DIR) / "tests/fixtures/chat_templates";

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << p;
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

const json& goldens() {
  static const json g = json::parse(slurp(kFixtures / "goldens.json"));
  return g;
}

using ressa::test::error_of;

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

json img() { return json{{"type", "image"}}; }
json txt(const std::string& t) { return json{{"type", "text"}, {"text", t}}; }
json msg(const std::string& role, json content) { return json{{"role", role}, {"content", std::move(content)}}; }

std::string render_src(const std::string& src, const json& messages = json::array(), bool agp = false,
                       const json& extra = json::object()) {
  return ChatTemplate::from_string(src, "t.jinja").render(messages, agp, extra);
}

// ---- goldens --------------------------------------------------------------------------------

TEST(ChatTemplateGoldens, FixturesArePresent) {
  const json& cases = goldens()["cases"];
  ASSERT_TRUE(cases.is_array());
  EXPECT_GE(cases.size(), 100u);
  for (const char* f : {"llava_1_5.jinja", "llava_onevision.jinja", "qwen2_vl.jinja", "llava_next_mistral.jinja",
                        "multimodal_doc.jinja", "features.jinja", "chatml.jinja", "LICENSE.md"})
    EXPECT_TRUE(fs::exists(kFixtures / f)) << f;
}

TEST(ChatTemplateGoldens, EveryCaseReproducedExactly) {
  size_t outputs = 0, errors = 0, snippets = 0;
  for (const json& c : goldens()["cases"]) {
    const std::string name = c["name"];
    SCOPED_TRACE(name);
    if (c.contains("source")) {  // a snippet: its own source and all its variables
      std::string got;
      try {
        got = jinja::Template::parse(c["source"].get<std::string>(), "snippet").render(c["vars"]);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "threw: " << e.what();
        continue;
      }
      EXPECT_EQ(got, c["output"].get<std::string>());
      ++snippets;
      continue;
    }
    const std::string file = c["template"];
    const ChatTemplate t = ChatTemplate::from_string(slurp(kFixtures / file), file);
    if (c.contains("output")) {
      std::string got;
      try {
        got = t.render(c["messages"], c["add_generation_prompt"].get<bool>(), c["vars"]);
      } catch (const std::exception& e) {
        ADD_FAILURE() << "threw: " << e.what();
        continue;
      }
      EXPECT_EQ(got, c["output"].get<std::string>());
      ++outputs;
    } else {
      const std::string e =
          error_of([&] { t.render(c["messages"], c["add_generation_prompt"].get<bool>(), c["vars"]); });
      // "[ChatTemplate] <file>:<line>:<col>: raise_exception: <the template's message>"
      const std::string prefix = "[ChatTemplate] " + file + ":";
      const std::string suffix = ": raise_exception: " + c["error"].get<std::string>();
      ASSERT_GT(e.size(), prefix.size() + suffix.size()) << e;
      EXPECT_EQ(e.substr(0, prefix.size()), prefix) << e;
      EXPECT_EQ(e.substr(e.size() - suffix.size()), suffix) << e;
      const std::string where = e.substr(prefix.size(), e.size() - prefix.size() - suffix.size());
      const size_t colon = where.find(':');
      EXPECT_TRUE(colon != std::string::npos && colon > 0 && colon + 1 < where.size() &&
                  where.find_first_not_of("0123456789:") == std::string::npos)
          << e;
      ++errors;
    }
  }
  EXPECT_GT(outputs, 100u);
  EXPECT_GE(errors, 5u);
  EXPECT_GE(snippets, 20u);
}

// The prompts transformers' own processor tests expect for these templates.
TEST(ChatTemplateGoldens, MatchTransformersProcessorTests) {
  const json one = json::array({msg("user", json::array({img(), txt("What is shown in this image?")}))});
  EXPECT_EQ(ChatTemplate::from_string(slurp(kFixtures / "llava_1_5.jinja"), "llava").render(one, true),
            "USER: <image>\nWhat is shown in this image? ASSISTANT:");
  EXPECT_EQ(ChatTemplate::from_string(slurp(kFixtures / "llava_onevision.jinja"), "ov").render(one, true),
            "<|im_start|>user <image>\nWhat is shown in this image?<|im_end|><|im_start|>assistant\n");
  const json cont = json::array({msg("user", json::array({img(), txt("Describe this image.")})),
                                 msg("assistant", json::array({txt("There is a dog and")}))});
  // transformers' continue_final_message strips the rendered text after the final message.
  const std::string full = ChatTemplate::from_string(slurp(kFixtures / "llava_1_5.jinja"), "llava").render(cont, false);
  EXPECT_EQ(full, "USER: <image>\nDescribe this image. ASSISTANT: There is a dog and ");
}

// The llava-hf templates read only the list form; a string content is refused, not dropped.
TEST(ChatTemplateGoldens, LlavaTemplateRefusesStringContent) {
  const ChatTemplate t = ChatTemplate::from_string(slurp(kFixtures / "llava_1_5.jinja"), "llava_1_5.jinja");
  const std::string e = error_of([&] { t.render(json::array({json{{"role", "user"}, {"content", "hi"}}}), true); });
  EXPECT_TRUE(contains(e, "[ChatTemplate] llava_1_5.jinja:1:")) << e;
  EXPECT_TRUE(contains(e, "selectattr")) << e;
}

// ---- load_dir -------------------------------------------------------------------------------

TEST(ChatTemplateLoadDir, PrecedenceJinjaThenJsonThenTokenizerConfig) {
  TempDir d;
  write(d / "chat_template.jinja", "jinja:{{ messages | length }}\n");
  write(d / "chat_template.json", json{{"chat_template", "json:{{ messages | length }}"}}.dump());
  write(d / "tokenizer_config.json",
        json{{"chat_template", "tok:{{ messages | length }}{{ bos_token }}"}, {"bos_token", "<s>"}}.dump());
  const json two = json::array({msg("user", "a"), msg("assistant", "b")});

  ChatTemplate t = ChatTemplate::load_dir(d.str());
  EXPECT_EQ(t.render(two, false), "jinja:2");  // one trailing newline dropped, as in Python Jinja
  EXPECT_EQ(t.where(), d.file("chat_template.jinja"));
  EXPECT_EQ(t.variables(), (json{{"bos_token", "<s>"}}));

  fs::remove(d / "chat_template.jinja");
  t = ChatTemplate::load_dir(d.str());
  EXPECT_EQ(t.render(two, false), "json:2");
  EXPECT_EQ(t.where(), d.file("chat_template.json"));

  fs::remove(d / "chat_template.json");
  t = ChatTemplate::load_dir(d.str());
  EXPECT_EQ(t.render(two, false), "tok:2<s>");
  EXPECT_EQ(t.where(), d.file("tokenizer_config.json"));
  EXPECT_EQ(t.render(two, false, json{{"bos_token", "[BOS]"}}), "tok:2[BOS]");  // extra overrides

  fs::remove(d / "tokenizer_config.json");
  const std::string e = error_of([&] { ChatTemplate::load_dir(d.str()); });
  EXPECT_TRUE(contains(e, "[ChatTemplate] " + d.str() + ": no chat template")) << e;
}

TEST(ChatTemplateLoadDir, RealTemplateFromEachPlace) {
  const std::string src = slurp(kFixtures / "llava_1_5.jinja");
  const json one = json::array({msg("user", json::array({img(), txt("What is shown in this image?")}))});
  const std::string want = "USER: <image>\nWhat is shown in this image? ASSISTANT:";
  {
    TempDir d("_jinja");
    write(d / "chat_template.jinja", src);
    EXPECT_EQ(ChatTemplate::load_dir(d.str()).render(one, true), want);
  }
  {
    TempDir d("_json");
    write(d / "chat_template.json", json{{"chat_template", src}}.dump(2));
    EXPECT_EQ(ChatTemplate::load_dir(d.str()).render(one, true), want);
  }
  {
    TempDir d("_tok");
    write(d / "tokenizer_config.json", json{{"chat_template", src}}.dump());
    EXPECT_EQ(ChatTemplate::load_dir(d.str()).render(one, true), want);
  }
}

TEST(ChatTemplateLoadDir, NamedTemplatesAndSpecialTokens) {
  TempDir d;
  write(d / "tokenizer_config.json",
        json{{"chat_template", json::array({json{{"name", "tool_use"}, {"template", "tools"}},
                                            json{{"name", "default"}, {"template", "{{ bos_token }}|{{ eos_token }}|"
                                                                                  "{{ unk_token }}|{{ pad_token }}"}}})},
             {"bos_token", json{{"content", "<s>"}, {"lstrip", false}}},
             {"eos_token", "</s>"},
             {"unk_token", nullptr},
             {"pad_token", json{{"content", "<pad>"}}}}
            .dump());
  const ChatTemplate t = ChatTemplate::load_dir(d.str());
  EXPECT_EQ(t.render(json::array(), false), "<s>|</s>||<pad>");
  EXPECT_EQ(t.variables(), (json{{"bos_token", "<s>"}, {"eos_token", "</s>"}, {"pad_token", "<pad>"}}));
}

TEST(ChatTemplateLoadDir, MalformedFilesNameTheFile) {
  {
    TempDir d("_a");
    write(d / "tokenizer_config.json", json{{"chat_template", json::array({json{{"name", "tool_use"}, {"template", "x"}}})}}.dump());
    const std::string e = error_of([&] { ChatTemplate::load_dir(d.str()); });
    EXPECT_TRUE(contains(e, d.file("tokenizer_config.json"))) << e;
    EXPECT_TRUE(contains(e, "default")) << e;
  }
  {
    TempDir d("_b");
    write(d / "chat_template.json", "{\"chat_template\": ");
    const std::string e = error_of([&] { ChatTemplate::load_dir(d.str()); });
    EXPECT_TRUE(contains(e, "[ChatTemplate] " + d.file("chat_template.json") + ": not valid JSON")) << e;
  }
  {
    TempDir d("_c");
    write(d / "chat_template.json", json{{"template", "x"}}.dump());
    const std::string e = error_of([&] { ChatTemplate::load_dir(d.str()); });
    EXPECT_TRUE(contains(e, d.file("chat_template.json"))) << e;
  }
  {
    TempDir d("_d");
    write(d / "tokenizer_config.json", json{{"chat_template", 3}}.dump());
    const std::string e = error_of([&] { ChatTemplate::load_dir(d.str()); });
    EXPECT_TRUE(contains(e, d.file("tokenizer_config.json"))) << e;
  }
  {
    TempDir d("_e");
    write(d / "chat_template.jinja", "x");
    write(d / "tokenizer_config.json", json{{"bos_token", 7}}.dump());
    const std::string e = error_of([&] { ChatTemplate::load_dir(d.str()); });
    EXPECT_TRUE(contains(e, d.file("tokenizer_config.json") + ": bos_token")) << e;
  }
  {
    TempDir d("_f");
    write(d / "chat_template.jinja", "line one\n{% if %}");
    const std::string e = error_of([&] { ChatTemplate::load_dir(d.str()); });
    EXPECT_TRUE(contains(e, "[ChatTemplate] " + d.file("chat_template.jinja") + ":2:7: ")) << e;
  }
}

// ---- from_format ----------------------------------------------------------------------------

TEST(ChatTemplateFormat, Llava15Prompt) {
  const ChatTemplate t = ChatTemplate::from_format("USER: {image}\\n{question} ASSISTANT:");
  const json one = json::array({msg("user", json::array({img(), txt("What is shown in this image?")}))});
  EXPECT_EQ(t.render(one, true), "USER: <image>\nWhat is shown in this image? ASSISTANT:");
  EXPECT_EQ(t.render(one, false), "USER: <image>\nWhat is shown in this image? ASSISTANT:");
  // The same prompt the llava-1.5 template gives.
  EXPECT_EQ(t.render(one, true),
            ChatTemplate::from_string(slurp(kFixtures / "llava_1_5.jinja"), "llava").render(one, true));
}

TEST(ChatTemplateFormat, PlaceholdersAndEscapes) {
  const json two_images =
      json::array({msg("user", json::array({txt("Compare"), img(), txt("and"), img(), txt("these.")}))});
  EXPECT_EQ(ChatTemplate::from_format("{bos}[{image}] {question}").render(two_images, true, json{{"bos_token", "<s>"}}),
            "<s>[<image><image>] Compare and these.");
  EXPECT_EQ(ChatTemplate::from_format("{image}{question}")
                .render(two_images, true, json{{"image_token", "<|image_pad|>"}}),
            "<|image_pad|><|image_pad|>Compare and these.");
  EXPECT_EQ(ChatTemplate::from_format("{bos}{question}").render(json::array({msg("user", "plain")}), true),
            "plain");  // no bos_token: empty
  EXPECT_EQ(ChatTemplate::from_format("{{q}}: {question}\\t\\\\ 'x' \"y\" {{% %}}")
                .render(json::array({msg("user", "it's")}), true),
            "{q}: it's\t\\ 'x' \"y\" {% %}");
}

TEST(ChatTemplateFormat, FormatErrors) {
  const auto err = [](const std::string& f) { return error_of([&] { ChatTemplate::from_format(f); }); };
  EXPECT_TRUE(contains(err("{image} {prompt}"), "unknown placeholder {prompt}")) << err("{image} {prompt}");
  EXPECT_TRUE(contains(err("{image}"), "no {question}"));
  EXPECT_TRUE(contains(err("{question} \\x"), "unknown escape at offset 11"));
  EXPECT_TRUE(contains(err("{question} trailing \\"), "unknown escape"));
  EXPECT_TRUE(contains(err("{question"), "'{' at offset 0 is never closed"));
  EXPECT_TRUE(contains(err("{question} }"), "'}' at offset 11"));
  for (const char* f : {"{image}", "{question"}) EXPECT_TRUE(contains(err(f), "[ChatTemplate] --prompt-format: ")) << f;
}

TEST(ChatTemplateFormat, RenderErrors) {
  const ChatTemplate with_image = ChatTemplate::from_format("USER: {image}\\n{question} ASSISTANT:");
  const ChatTemplate no_image = ChatTemplate::from_format("Q: {question} A:");
  const json u = msg("user", json::array({img(), txt("hi")}));
  EXPECT_TRUE(contains(error_of([&] { with_image.render(json::array({u, msg("assistant", "x")}), true); }),
                       "exactly one user message"));
  EXPECT_TRUE(contains(error_of([&] { with_image.render(json::array({msg("assistant", "x")}), true); }),
                       "exactly one user message"));
  EXPECT_TRUE(contains(error_of([&] { with_image.render(json::array(), true); }), "exactly one user message"));
  EXPECT_TRUE(contains(error_of([&] { no_image.render(json::array({u}), true); }), "has no {image}"));
  EXPECT_EQ(no_image.render(json::array({msg("user", json::array({txt("hi")}))}), true), "Q: hi A:");
}

// ---- ressa_default --------------------------------------------------------------------------

TEST(ChatTemplateRessaDefault, Prompt) {
  const ChatTemplate t = ChatTemplate::ressa_default();
  const json vars = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  const json q = msg("user", json::array({img(), txt("What color is the circle ?")}));
  EXPECT_EQ(t.render(json::array({q}), true, vars), "<s> <image> What color is the circle ?");
  EXPECT_EQ(t.render(json::array({q, msg("assistant", json::array({txt("red")}))}), false, vars),
            "<s> <image> What color is the circle ? red </s>");
  EXPECT_EQ(t.render(json::array({msg("user", "hello")}), true, vars), "<s> hello");
  EXPECT_EQ(t.source(), ChatTemplate::ressa_default_source());
  // The source round-trips through a model directory.
  TempDir d;
  write(d / "chat_template.jinja", ChatTemplate::ressa_default_source());
  write(d / "tokenizer_config.json", vars.dump());
  EXPECT_EQ(ChatTemplate::load_dir(d.str()).render(json::array({q}), true), "<s> <image> What color is the circle ?");
}

TEST(ChatTemplateRessaDefault, Errors) {
  const ChatTemplate t = ChatTemplate::ressa_default();
  const json q = msg("user", json::array({img(), txt("q")}));
  EXPECT_TRUE(contains(error_of([&] { t.render(json::array({q}), true); }), "this template needs bos_token"));
  EXPECT_TRUE(contains(error_of([&] {
                         t.render(json::array({q, msg("assistant", "a")}), true, json{{"bos_token", "<s>"}});
                       }),
                       "an assistant turn needs eos_token"));
  EXPECT_TRUE(contains(error_of([&] { t.render(json::array({msg("system", "s")}), true, json{{"bos_token", "<s>"}}); }),
                       "user and assistant messages only"));
  EXPECT_TRUE(contains(error_of([&] {
                         t.render(json::array({msg("assistant", json::array({img()}))}), true,
                                  json{{"bos_token", "<s>"}, {"eos_token", "</s>"}});
                       }),
                       "image parts in user turns"));
  EXPECT_TRUE(contains(error_of([&] { t.render(json{{"role", "user"}}, true); }), "messages must be a JSON list"));
}

// ---- errors: locations and raise_exception --------------------------------------------------

TEST(ChatTemplateErrors, SyntaxErrorsReportLineAndColumn) {
  const auto err = [](const std::string& src) { return error_of([&] { ChatTemplate::from_string(src, "t.jinja"); }); };
  EXPECT_TRUE(contains(err("hello\n  {{ 1 + }}"), "[ChatTemplate] t.jinja:2:10: ")) << err("hello\n  {{ 1 + }}");
  EXPECT_TRUE(contains(err("a\nb\n{% for x in y %}\n{{ x }}"), "t.jinja:3:4: '{% for %}' is never closed"))
      << err("a\nb\n{% for x in y %}\n{{ x }}");
  EXPECT_TRUE(contains(err("{% if x %}\n{% endfor %}"), "t.jinja:2:4: unexpected '{% endfor %}'"))
      << err("{% if x %}\n{% endfor %}");
  EXPECT_TRUE(contains(err("x\r\ny {{ 'abc }}"), "t.jinja:2:6: string literal is never closed"))
      << err("x\r\ny {{ 'abc }}");
  EXPECT_TRUE(contains(err("{% macro m() %}{% endmacro %}"), "t.jinja:1:4: the statement '{% macro %}' is not supported"))
      << err("{% macro m() %}{% endmacro %}");
  EXPECT_TRUE(contains(err("{{ x }\n"), "t.jinja:1:")) << err("{{ x }\n");
  EXPECT_TRUE(contains(err("{{ 1.5 }}"), "t.jinja:1:4: float literals are not supported")) << err("{{ 1.5 }}");
  EXPECT_TRUE(contains(err("{# open"), "t.jinja:1:1: comment")) << err("{# open");
}

TEST(ChatTemplateErrors, RuntimeErrorsReportLineAndColumn) {
  const auto err = [](const std::string& src, const json& messages = json::array()) {
    return error_of([&] { render_src(src, messages); });
  };
  EXPECT_TRUE(contains(err("ok\n{{ messages | tojson }}"), "t.jinja:2:13: the filter 'tojson' is not supported"))
      << err("ok\n{{ messages | tojson }}");
  EXPECT_TRUE(contains(err("{% for m in messages %}\n  {{ m.content.nope() }}{% endfor %}", json::array({msg("user", "x")})),
                       "t.jinja:2:")) << err("{% for m in messages %}\n  {{ m.content.nope() }}{% endfor %}");
  EXPECT_TRUE(contains(err("\n\n   {{ messages }}"), "t.jinja:3:7: printing a list")) << err("\n\n   {{ messages }}");
  EXPECT_TRUE(contains(err("{{ 1 // 0 }}"), "t.jinja:1:6: integer division or modulo by zero")) << err("{{ 1 // 0 }}");
  EXPECT_TRUE(contains(err("{{ nothing.at_all }}"), "t.jinja:1:")) << err("{{ nothing.at_all }}");
}

TEST(ChatTemplateErrors, RaiseExceptionMessageSurfaces) {
  const std::string src = "{%- for m in messages -%}\n"
                          "  {%- if m['role'] == 'tool' -%}\n"
                          "    {{- raise_exception('No tools, got: ' + m['content']) -}}\n"
                          "  {%- endif -%}\n"
                          "{%- endfor -%}";
  const std::string e = error_of([&] { render_src(src, json::array({msg("user", "a"), msg("tool", "calc")})); });
  EXPECT_EQ(e, "[ChatTemplate] t.jinja:3:9: raise_exception: No tools, got: calc");
  // From a real template, through load_dir.
  TempDir d;
  write(d / "chat_template.json", json{{"chat_template", slurp(kFixtures / "llava_next_mistral.jinja")}}.dump());
  const std::string e2 = error_of([&] {
    ChatTemplate::load_dir(d.str()).render(json::array({msg("critic", json::array({txt("x")}))}), true);
  });
  // Line 6: the template's string literals hold newlines.
  EXPECT_TRUE(contains(e2, d.file("chat_template.json") + ":6:274: ")) << e2;
  EXPECT_TRUE(contains(e2, "raise_exception: Only user and assistant roles are supported!")) << e2;
}

// ---- Jinja semantics the fixtures lean on ---------------------------------------------------

TEST(Jinja, NamespaceCarriesStateOutOfLoops) {
  EXPECT_EQ(render_src("{% set ns = namespace(n=0, s='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}"
                       "{% set ns.s = ns.s ~ m.role %}{% endfor %}{{ ns.n }} {{ ns.s }}",
                       json::array({msg("user", "a"), msg("assistant", "b")})),
            "2 userassistant");
  // A plain set inside a loop is local to the iteration.
  EXPECT_EQ(render_src("{% set n = 0 %}{% for m in messages %}{% set n = n + 1 %}{{ n }}{% endfor %}{{ n }}",
                       json::array({msg("user", "a"), msg("assistant", "b")})),
            "110");
  // A value read from a namespace keeps its value when the namespace changes.
  EXPECT_EQ(render_src("{% set ns = namespace(v='a') %}{% set old = ns.v %}{% set ns.v = 'b' %}{{ old }}{{ ns.v }}"),
            "ab");
  EXPECT_EQ(render_src("{% set ns = namespace() %}{% set ns.x = 3 %}{{ ns.x }}{{ ns.y is defined }}"), "3False");
  EXPECT_TRUE(contains(error_of([&] { render_src("{% set s = 'x' %}{% set s.a = 1 %}"); }), "t.jinja:1:"));
  EXPECT_TRUE(contains(error_of([&] { render_src("{{ 'x'.strip(chars='x') }}"); }), "t.jinja:1:"));
}

// Where the JS port departs from Python Jinja (which transformers renders with), Python Jinja
// 3.1.6's output, configured as transformers configures it.
TEST(Jinja, PythonJinjaSemantics) {
  const auto r = [](const std::string& src, const json& vars = json::object()) {
    return jinja::Template::parse(src, "t").render(vars);
  };
  EXPECT_EQ(r("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ -7 % 3 }} {{ 10 - 3 * 2 }} {{ (1 + 2) * 3 }} {{ -3 }}"),
            "3 -4 -2 2 4 9 -3");
  EXPECT_EQ(r("{% for v in vals %}{{ loop.index0 }}:{% if v is defined %}d{% endif %}{% if v is none %}n{% endif %}"
              "{% if v is string %}s{% endif %}{% if v is mapping %}m{% endif %}{% if v is iterable %}i{% endif %}"
              "{% if v is number %}#{% endif %}{% if v is integer %}I{% endif %}{% if v is sequence %}q{% endif %}"
              "{% if v is boolean %}b{% endif %}{% if v is true %}T{% endif %}{% if v is false %}F{% endif %} "
              "{% endfor %}{% if nope is undefined %}u{% endif %}",
              json{{"vals", json::array({nullptr, "s", json{{"a", 1}}, json::array({1}), 3, true, false, ""})}}),
            "0:dn 1:dsiq 2:dmiq 3:diq 4:d#I 5:d#bT 6:d#bF 7:dsiq u");
  EXPECT_EQ(r("{% if 4 is even %}e{% endif %}{% if 3 is odd %}o{% endif %}{% if 3 is equalto 3 %}q{% endif %}"
              "{% if 3 is eq(3) %}Q{% endif %}{% if 3 is ne 4 %}n{% endif %}{% if 'a' is not equalto 'b' %}N{% endif %}"),
            "eoqQnN");
  EXPECT_EQ(r("{{ 'café' | length }} {{ 'Hello' | upper }} {{ 'Hello' | lower }} {{ [1,2,3] | length }} {{ m | length }} "
              "{{ 'ab' | list | length }}",
              json{{"m", json{{"a", 1}, {"b", 2}}}}),
            "4 HELLO hello 3 2 2");
  EXPECT_EQ(r("{% for x in xs | selectattr('on') %}{{ x.n }}{% endfor %}|{% for x in xs | rejectattr('on') %}{{ x.n }}"
              "{% endfor %}|{{ xs | selectattr('n', 'equalto', 2) | list | length }}",
              json{{"xs", json::array({json{{"n", 1}, {"on", true}}, json{{"n", 2}, {"on", false}}, json{{"n", 3}},
                                       json{{"n", 4}, {"on", "y"}}})}}),
            "14|23|1");
  EXPECT_EQ(r("{{ 'xxhixx'.strip('x') }}|{{ '  hi  '.lstrip() }}|{{ '  hi  '.rstrip() }}|{% if 'abc'.startswith('ab') %}s"
              "{% endif %}{% if 'abc'.endswith('bc') %}e{% endif %}|{{ 'MiXed'.upper() }}{{ 'MiXed'.lower() }}"),
            "hi|hi  |  hi|se|MIXEDmixed");
  // A set inside a loop body lasts for that iteration only.
  EXPECT_EQ(r("{% set x = 1 %}{% if true %}{% set x = 2 %}{% endif %}{{ x }}{% for i in [1] %}{% set x = 3 %}{{ x }}"
              "{% endfor %}{{ x }}{% for i in [1, 2] %}{% if i == 2 %}{{ y }}{% endif %}{% set y = i %}{% endfor %}"),
            "232");
  EXPECT_EQ(r("{% if 'b' > 'a' %}1{% endif %}{% if 'é' > 'z' %}2{% endif %}{% if 2 >= 2 %}3{% endif %}"
              "{% if 1 != '1' %}4{% endif %}{% if [1] == [1] %}5{% endif %}"),
            "12345");
  EXPECT_EQ(r("{{ 9007199254740993 + 1 }} {{ n * 2 }}", json{{"n", 4611686018427387903LL}}),
            "9007199254740994 9223372036854775806");
  EXPECT_EQ(r("a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc\r\n"), "a\nb\nc");
  // Python's True == 1 and False == 0.
  EXPECT_EQ(r("{% if 1 == true %}a{% endif %}{% if 0 == false %}b{% endif %}{% if 1 in [true] %}c{% endif %}"
              "{% if 2 == true %}d{% endif %}{% if true is equalto 1 %}e{% endif %}"),
            "abce");
}

TEST(Jinja, WhitespaceRules) {
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before one;
  // a variable tag keeps both.
  EXPECT_EQ(render_src("{% if true %}\n  a\n  {% endif %}\n  {{ 'b' }}\nc\n"), "  a\n  b\nc");
  EXPECT_EQ(render_src("x  {%- if true -%}  \n y{% endif %} {# c #}\nz"), "xy z");
  EXPECT_EQ(render_src("a\r\nb\rc"), "a\nb\nc");
  EXPECT_EQ(render_src("{% generation %} g {% endgeneration %}"), " g ");
}

// ---- limits ---------------------------------------------------------------------------------

// Each runaway stops on a limit with an error instead of running on. The limits are smaller than
// the defaults (which stop the same templates, only later: a million loop bodies take ~1 s, and
// ~45 s under ASan) so the test stays quick everywhere.
TEST(JinjaLimits, RunawayTemplatesHitALimit) {
  ressa::io::jinja::Limits small;
  small.max_loop_iterations = 20000;
  small.max_work = size_t(1) << 22;
  small.max_output_bytes = size_t(1) << 20;
  small.max_value_nodes = 100000;
  const auto render_small = [&](const std::string& src) {
    return ChatTemplate::from_string(src, "t.jinja", small).render(json::array(), false);
  };
  // 20^6 loop bodies.
  const std::string loops = "{% set l = [0,1,2,3,4,5,6,7,8,9,0,1,2,3,4,5,6,7,8,9] %}"
                            "{% for a in l %}{% for b in l %}{% for c in l %}{% for d in l %}{% for e in l %}"
                            "{% for f in l %}{{ 'x' }}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}{% endfor %}";
  std::string e = error_of([&] { render_small(loops); });
  EXPECT_TRUE(contains(e, "loop iterations (limit)")) << e;
  EXPECT_TRUE(contains(e, "[ChatTemplate] t.jinja:1:")) << e;

  // A string doubling in a namespace.
  std::string doubling = "{% set ns = namespace(s='ab') %}{% set l = [";
  for (int i = 0; i < 64; ++i) doubling += i ? ",0" : "0";
  doubling += "] %}{% for i in l %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}";
  e = error_of([&] { render_small(doubling); });
  EXPECT_TRUE(contains(e, "(limit)")) << e;

  // A list doubling.
  std::string lists = "{% set ns = namespace(v=[1]) %}{% set l = [";
  for (int i = 0; i < 64; ++i) lists += i ? ",0" : "0";
  lists += "] %}{% for i in l %}{% set ns.v = [ns.v, ns.v] %}{% endfor %}";
  e = error_of([&] { render_small(lists); });
  EXPECT_TRUE(contains(e, "(limit)")) << e;

  // Deep nesting is refused at parse time rather than overflowing the stack.
  e = error_of([&] { render_src("{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}"); });
  EXPECT_TRUE(contains(e, "nest")) << e;
  std::string blocks;
  for (int i = 0; i < 500; ++i) blocks += "{% if true %}";
  for (int i = 0; i < 500; ++i) blocks += "{% endif %}";
  e = error_of([&] { render_src(blocks); });
  EXPECT_TRUE(contains(e, "nest")) << e;
  e = error_of([&] { render_src("{{ " + std::string(5000, '-') + "1 }}"); });
  EXPECT_TRUE(contains(e, "nest")) << e;
  e = error_of([&] { render_src("{{ " + std::string(3000, '[') + std::string(3000, ']') + " }}"); });
  EXPECT_TRUE(contains(e, "nest")) << e;
}

TEST(JinjaLimits, CustomLimits) {
  jinja::Limits small;
  small.max_output_bytes = 100;
  const ChatTemplate t = ChatTemplate::from_string("{% for m in messages %}{{ m.content }}{% endfor %}", "t", small);
  json many = json::array();
  for (int i = 0; i < 20; ++i) many.push_back(msg("user", "0123456789"));
  EXPECT_TRUE(contains(error_of([&] { t.render(many, false); }), "rendered text longer than 100 bytes (limit)"));

  jinja::Limits few;
  few.max_loop_iterations = 5;
  const ChatTemplate t2 = ChatTemplate::from_string("{% for m in messages %}.{% endfor %}", "t", few);
  EXPECT_EQ(t2.render(json::array({msg("user", "a"), msg("user", "a")}), false), "..");
  EXPECT_TRUE(contains(error_of([&] { t2.render(many, false); }), "more than 5 loop iterations (limit)"));

  jinja::Limits work;
  work.max_work = 1000;
  const ChatTemplate t3 = ChatTemplate::from_string(
      "{% for m in messages %}{% for n in messages %}{{ m.role ~ n.role }}{% endfor %}{% endfor %}", "t", work);
  EXPECT_TRUE(contains(error_of([&] { t3.render(many, false); }), "steps (limit)"));

  jinja::Limits shallow;
  shallow.max_nesting = 3;
  EXPECT_TRUE(contains(error_of([&] {
                         ChatTemplate::from_string("{% if 1 %}{% if 1 %}{% if 1 %}{% if 1 %}{% endif %}{% endif %}"
                                                   "{% endif %}{% endif %}",
                                                   "t", shallow);
                       }),
                       "nesting deeper than 3"));
}

}  // namespace
