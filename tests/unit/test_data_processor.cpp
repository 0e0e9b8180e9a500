// Tests for data::Processor (chat template + tokenizer + image processor): on ressa's shipped
// model it gives the prompt ressa trains and evaluates with (train/vqa_data.cpp: BOS, the image
// token once per image feature, the question's words); a llava-1.5 style directory gets its chat
// template rendered and tokenized with the tokenizer's special tokens; generation_config.json's
// eos_token_id is read as an id or a list.
#include "ressa/data/processor.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

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
