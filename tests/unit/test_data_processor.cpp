// Tests for data::Processor (chat template + tokenizer + image processor): on ressa's shipped
// model it gives the prompt ressa trains and evaluates with (train/vqa_data.cpp: BOS, the image
// token once per image feature, the question's words); a llava-1.5 style directory gets its chat
// template rendered and tokenized with the tokenizer's special tokens; generation_config.json's
// eos_token_id is read as an id or a list.
#include "ressa/data/processor.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "temp_dir.h"

using namespace ressa;
namespace fs = std::filesystem;

namespace {
const fs::path kShapes = fs::path(RESSA_SOURCE_DIR) / "models" / "shapes-small";
}

TEST(DataProcessor, ShippedModelPromptIsTheTrainingPrompt) {
  const auto cfg = io::load_config((kShapes / "config.json").string());
  const auto p = data::Processor::load_dir(kShapes.string(), cfg);
  const auto& tok = p.tokenizer();
  const std::string q = "what color is the circle ?";
  const auto got = p.prompt(q, true);
  std::vector<int64_t> want{tok.bos_id()};
  want.insert(want.end(), cfg.image_tokens(), cfg.image_token_index);
  for (int64_t id : tok.encode(q)) want.push_back(id);
  EXPECT_EQ(got.ids, want) << got.text;
  EXPECT_EQ(p.eos_ids(), std::vector<int64_t>{tok.eos_id()});
  // A square image of the model's size is only normalized: (v / 255 - mean) / std.
  const int S = cfg.vision.image_size;
  data::Image img{S, S, std::vector<uint8_t>(size_t(S) * S * 3)};
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t(i * 7);
  const auto px = p.pixels(img);
  ASSERT_EQ(px.height, S);
  ASSERT_EQ(px.width, S);
  for (int c = 0; c < 3; ++c) {
    const size_t i = 5;  // pixel (0, 5)
    const double want_v = (double(img.rgb[i * 3 + c]) / 255.0 - cfg.image_mean[c]) / cfg.image_std[c];
    EXPECT_NEAR(px.pixels[size_t(c) * S * S + i], want_v, 1e-5);
  }
}

TEST(DataProcessor, ChatTemplateAndFormatOverride) {
  test::TempDir t;
  for (const char* f : {"config.json", "tokenizer.json"}) fs::copy_file(kShapes / f, t / f);
  const auto cfg = io::load_config((t / "config.json").string());
  // A template file wins over ressa's own prompt; special tokens come from the tokenizer.
  write_file_atomic((t / "chat_template.jinja").string(),
                    "{{ bos_token }}{% for m in messages %}{% for c in m['content'] %}{% if c['type'] == 'image' %} "
                    "<image>{% else %} {{ c['text'] }}{% endif %}{% endfor %}{% endfor %}"
                    "{% if add_generation_prompt %} the{% endif %}");
  auto p = data::Processor::load_dir(t.str(), cfg);
  const auto& tok = p.tokenizer();
  auto got = p.prompt("what color", true);
  EXPECT_EQ(got.text, "<s> <image> what color the");
  ASSERT_EQ(got.ids.size(), size_t(1 + cfg.image_tokens() + 3));
  EXPECT_EQ(got.ids.back(), tok.token_to_id("the"));
  // --prompt-format replaces the template; a prompt without its image is refused.
  p = data::Processor::load_dir(t.str(), cfg, "{bos} {image} {question} ?");
  got = p.prompt("what color", true);
  EXPECT_EQ(got.text, "<s> <image> what color ?");
  EXPECT_EQ(got.ids.back(), tok.token_to_id("?"));
  p = data::Processor::load_dir(t.str(), cfg, "{bos} {question}");
  EXPECT_THROW(p.prompt("what color", true), std::runtime_error);
}

TEST(DataProcessor, GenerationConfigEos) {
  EXPECT_EQ(data::parse_generation_eos(R"({"eos_token_id": 2})", "g"), (std::vector<int64_t>{2}));
  EXPECT_EQ(data::parse_generation_eos(R"({"eos_token_id": [151645, 151643]})", "g"),
            (std::vector<int64_t>{151645, 151643}));
  EXPECT_TRUE(data::parse_generation_eos(R"({"bos_token_id": 1})", "g").empty());
  try {
    data::parse_generation_eos(R"({"eos_token_id": "2"})", "gen.json");
    FAIL() << "a string eos_token_id was accepted";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("gen.json: eos_token_id"), std::string::npos) << e.what();
  }
  EXPECT_THROW(data::parse_generation_eos("{", "g"), std::runtime_error);
}

namespace {
// A llava-hf style directory: a real tokenizer with llava's image token added, a chat template
// from tests/fixtures/chat_templates and generation_config.json's eos ids.
fs::path assemble_hf_dir(const fs::path& d, const std::string& tokenizer, const std::string& tmpl,
                         const std::string& generation_config) {
  const fs::path src(RESSA_SOURCE_DIR);
  nlohmann::json tok =
      nlohmann::json::parse(read_file((src / "tests/fixtures/tokenizers" / tokenizer / "tokenizer.json").string()));
  if (tokenizer == "phi3")
    tok["added_tokens"].push_back({{"id", 32011}, {"content", "<image>"}, {"single_word", false}, {"lstrip", false},
                                   {"rstrip", false}, {"normalized", false}, {"special", true}});
  write_file_atomic((d / "tokenizer.json").string(), tok.dump());
  fs::copy_file(src / "tests/fixtures/tokenizers" / tokenizer / "tokenizer_config.json", d / "tokenizer_config.json");
  fs::copy_file(src / "tests/fixtures/chat_templates" / tmpl, d / "chat_template.jinja");
  write_file_atomic((d / "generation_config.json").string(), generation_config);
  return d;
}

const data::Conversation kTwoRounds{
    "c1", "a.png", {{"user", "What is in the picture?"}, {"assistant", "A red circle."},
                    {"user", "And its size?"}, {"assistant", "It is small, 3 cm."}}};

// The target tokens as runs of consecutive positions.
std::vector<std::vector<int64_t>> target_runs(const data::EncodedConversation& e) {
  std::vector<std::vector<int64_t>> runs;
  for (size_t t = 0; t < e.ids.size(); ++t) {
    if (!e.target[t]) continue;
    if (t == 0 || !e.target[t - 1]) runs.emplace_back();
    runs.back().push_back(e.ids[t]);
  }
  return runs;
}
}  // namespace

TEST(DataProcessor, ShippedModelConversationIsTheTrainingLayout) {
  // ressa's own layout: <s> <image> x N question-words answer-words </s>, loss on answer + </s>.
  const auto cfg = io::load_config((kShapes / "config.json").string());
  const auto p = data::Processor::load_dir(kShapes.string(), cfg);
  const auto& tok = p.tokenizer();
  const data::VqaExample ex{"q1", "x.png", "what color is the circle ?", "red", "color", {}};
  const auto e = p.encode(data::to_conversation(ex), "test");
  std::vector<int64_t> want = p.prompt(ex.question, true).ids;
  EXPECT_EQ(e.prompt, want);
  const size_t prompt_len = want.size();
  for (int64_t id : tok.encode(ex.answer)) want.push_back(id);
  want.push_back(tok.eos_id());
  EXPECT_EQ(e.ids, want);
  ASSERT_EQ(e.target.size(), want.size());
  for (size_t t = 0; t < want.size(); ++t) EXPECT_EQ(e.target[t], t >= prompt_len ? 1 : 0) << t;
  EXPECT_EQ(e.first_answer_tokens, 2);
}

TEST(DataProcessor, Llava15ConversationEndsEachAnswerWithEos) {
  // The llava-1.5 template renders "USER: <image>\nQ ASSISTANT: A USER: Q2 ASSISTANT: A2 " and no
  // </s>: each answer's tokens are trained on, followed by an inserted </s> (LLaVA's training format).
  test::TempDir t;
  assemble_hf_dir(t.path, "phi3", "llava_1_5.jinja", R"({"eos_token_id": 2})");
  auto cfg = io::load_config((fs::path(RESSA_SOURCE_DIR) / "tests/fixtures/llava15_layout/config.json").string());
  const auto p = data::Processor::load_dir(t.str(), cfg);
  const auto& tok = p.tokenizer();
  const auto e = p.encode(kTwoRounds, "test");
  EXPECT_EQ(e.prompt, p.prompt("What is in the picture?", true).ids);
  ASSERT_EQ(e.ids.size(), e.target.size());
  // Without the two inserted </s>, the ids are the whole rendered text tokenized at once.
  std::vector<int64_t> without_eos;
  for (size_t i = 0; i < e.ids.size(); ++i)
    if (!(e.ids[i] == 2 && e.target[i])) without_eos.push_back(e.ids[i]);
  const std::string text =
      "USER: <image>\nWhat is in the picture? ASSISTANT: A red circle. USER: And its size? ASSISTANT: It is small, 3 cm. ";
  const auto whole = tok.encode(text, true);
  std::vector<int64_t> expanded;
  for (int64_t id : whole) expanded.insert(expanded.end(), id == 32011 ? cfg.image_tokens() : 1, id);
  EXPECT_EQ(without_eos, expanded);
  const auto runs = target_runs(e);
  ASSERT_EQ(runs.size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(runs[k].back(), 2) << "each answer ends with </s>";
    std::string answer = tok.decode(std::vector<int64_t>(runs[k].begin(), runs[k].end() - 1));
    while (!answer.empty() && answer.back() == ' ') answer.pop_back();  // the template's trailing space
    while (!answer.empty() && answer.front() == ' ') answer.erase(0, 1);
    EXPECT_EQ(answer, kTwoRounds.turns[2 * k + 1].text);
  }
  EXPECT_EQ(e.first_answer_tokens, static_cast<int64_t>(runs[0].size()));
}

TEST(DataProcessor, ChatMlConversationKeepsTheTemplatesEndToken) {
  // llava-onevision's template closes each turn with <|im_end|>, an eos of generation_config.json:
  // nothing is inserted and the loss covers the answer through <|im_end|>.
  test::TempDir t;
  assemble_hf_dir(t.path, "qwen2", "llava_onevision.jinja", R"({"eos_token_id": [151645, 151643]})");
  auto cfg = io::load_config((fs::path(RESSA_SOURCE_DIR) / "tests/fixtures/llava15_layout/config.json").string());
  cfg.image_token_index = 151646;
  const auto p = data::Processor::load_dir(t.str(), cfg);
  const auto e = p.encode(kTwoRounds, "test");
  const auto runs = target_runs(e);
  ASSERT_EQ(runs.size(), 2u);
  int64_t im_end = 0;
  for (int64_t id : e.ids) im_end += id == 151645;
  EXPECT_EQ(im_end, 4) << "one per turn, none inserted";
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_NE(std::find(runs[k].begin(), runs[k].end(), 151645), runs[k].end());
    const std::string answer = p.tokenizer().decode(runs[k], /*skip_special=*/true);
    EXPECT_NE(answer.find(kTwoRounds.turns[2 * k + 1].text), std::string::npos) << answer;
    EXPECT_EQ(answer.find("user"), std::string::npos) << answer;
  }
}
