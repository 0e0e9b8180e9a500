// Tests for ressa/io/tokenizer: build/save/load round trip, encoding of ShapesVQA text with
// the literal "<image>" token, unknown words, HF Whitespace splitting, and hand-made bad
// tokenizer.json files (Unigram model, BPE with Lowercase, missing special token, duplicate ids,
// invalid JSON).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ressa/core/atomic_file.h"
#include "ressa/data/shapes.h"
#include "ressa/io/tokenizer.h"

#include "error_of.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::io::Tokenizer;

namespace {
using ressa::test::TempDir;

// A minimal valid WordLevel tokenizer.json; `model`, `added` and `vocab` replace the parts.
std::string tokenizer_json(
    const std::string& type = "WordLevel",
    const std::string& vocab = R"({"<pad>":0,"<unk>":1,"<s>":2,"</s>":3,"<image>":4,"red":5})") {
  std::string added;
  const char* sp[] = {"<pad>", "<unk>", "<s>", "</s>", "<image>"};
  for (int i = 0; i < 5; ++i) {
    if (vocab.find(std::string("\"") + sp[i] + "\"") == std::string::npos) continue;
    if (!added.empty()) added += ",";
    added +=
        R"({"id":)" + std::to_string(i) + R"(,"content":")" + sp[i] +
        R"(","single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true})";
  }
  return R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":[)" + added +
         R"(],"normalizer":{"type":"Lowercase"},"pre_tokenizer":{"type":"Whitespace"},)"
         R"("post_processor":null,"decoder":null,"model":{"type":")" +
         type + R"(","vocab":)" + vocab + R"(,"unk_token":"<unk>"}})";
}

std::string load_error(const TempDir& d, const std::string& text) {
  const std::string p = d / "tokenizer.json";
  std::ofstream(p) << text;
  return ressa::test::error_of([&] { Tokenizer::load(p); });
}
}  // namespace

TEST(IoTokenizer, BuildSaveLoadRoundTrip) {
  TempDir d;
  Tokenizer t = Tokenizer::build_word_level(ressa::data::shapes_words());
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 1);
  EXPECT_EQ(t.bos_id(), 2);
  EXPECT_EQ(t.eos_id(), 3);
  EXPECT_EQ(t.image_id(), 4);
  EXPECT_EQ(t.id_to_token(5), "?");  // words follow the specials in sorted order
  EXPECT_EQ(t.vocab_size(), 5 + int64_t(ressa::data::shapes_words().size()));
  t.save(d / "tokenizer.json");
  Tokenizer u = Tokenizer::load(d / "tokenizer.json");
  ASSERT_EQ(u.vocab_size(), t.vocab_size());
  for (int64_t i = 0; i < t.vocab_size(); ++i) EXPECT_EQ(u.id_to_token(i), t.id_to_token(i));
  EXPECT_EQ(u.image_id(), 4);
  // Saving the loaded tokenizer reproduces the file byte for byte.
  u.save(d / "again.json");
  EXPECT_EQ(ressa::read_file(d / "again.json"), ressa::read_file(d / "tokenizer.json"));
  const std::string text = ressa::read_file(d / "tokenizer.json");
  EXPECT_NE(text.find(R"("type": "WordLevel")"), std::string::npos);
  EXPECT_NE(text.find(R"("unk_token": "<unk>")"), std::string::npos);
}

TEST(IoTokenizer, EncodeDecodeShapesQuestion) {
  Tokenizer t = Tokenizer::build_word_level(ressa::data::shapes_words());
  auto ids = t.encode("<image>\nIs the RED circle left of the blue cross?");
  ASSERT_EQ(ids.size(), 11u);
  EXPECT_EQ(ids[0], t.image_id());
  EXPECT_EQ(ids[3], t.token_to_id("red"));
  EXPECT_EQ(ids.back(), t.token_to_id("?"));  // "cross?" splits into "cross" and "?"
  EXPECT_EQ(t.decode(ids), "is the red circle left of the blue cross ?");
  EXPECT_EQ(t.decode(ids, false), "<image> is the red circle left of the blue cross ?");
  // Special tokens inside words and next to text are matched literally.
  auto s = t.encode("<s>red<image>blue</s>");
  EXPECT_EQ(s, (std::vector<int64_t>{2, t.token_to_id("red"), 4, t.token_to_id("blue"), 3}));
  // "<IMAGE>" is not the special token (matched case-sensitively, before lower-casing).
  EXPECT_EQ(t.encode("<IMAGE>"),
            (std::vector<int64_t>{t.unk_id(), t.unk_id(), t.unk_id()}));  // "<" "image" ">"
}

TEST(IoTokenizer, UnknownWordsAndLookups) {
  Tokenizer t = Tokenizer::build_word_level({"red", "circle", "?"});
  EXPECT_EQ(t.encode("red banana circle"),
            (std::vector<int64_t>{t.token_to_id("red"), t.unk_id(), t.token_to_id("circle")}));
  EXPECT_EQ(t.encode("it's"), (std::vector<int64_t>{1, 1, 1}));  // "it", "'", "s"
  EXPECT_TRUE(t.encode("  \t\n").empty());
  EXPECT_FALSE(t.find("banana").has_value());
  EXPECT_THROW(t.token_to_id("banana"), std::invalid_argument);
  EXPECT_THROW(t.id_to_token(t.vocab_size()), std::invalid_argument);
  EXPECT_THROW(t.decode({0, 99}), std::invalid_argument);
  EXPECT_EQ(t.decode({1, 0}, true), "");
  EXPECT_THROW(Tokenizer::build_word_level({"Red"}), std::invalid_argument);
  EXPECT_THROW(Tokenizer::build_word_level({"two words"}), std::invalid_argument);
  EXPECT_THROW(Tokenizer::build_word_level({"cross?"}), std::invalid_argument);
}

TEST(IoTokenizer, LoadsHandWrittenFile) {
  TempDir d;
  EXPECT_EQ(load_error(d, tokenizer_json()), "<no error>");
  Tokenizer t = Tokenizer::load(d / "tokenizer.json");
  EXPECT_EQ(t.encode("Red <image>"), (std::vector<int64_t>{5, 4}));
}

TEST(IoTokenizer, BadFiles) {
  TempDir d;
  struct Case {
    std::string text, what;
  } cases[] = {
      {"{\"model\": ", "invalid JSON"},
      // BPE is supported, but Lowercase (this helper's normalizer) only for WordLevel.
      {tokenizer_json("BPE"), "normalizer.type: unsupported normalizer 'Lowercase'"},
      {tokenizer_json("BPE"), "Lowercase only for WordLevel models"},
      // The model type is checked before any other component.
      {tokenizer_json("Unigram"), "model.type: unsupported tokenizer model type 'Unigram'"},
      {tokenizer_json("WordLevel", R"({"<pad>":0,"<unk>":1,"<s>":2,"</s>":3,"red":4})"),
       "'<image>'"},
      {tokenizer_json("WordLevel",
                      R"({"<pad>":0,"<unk>":1,"<s>":2,"</s>":3,"<image>":4,"red":5,"blue":5})"),
       "duplicate id 5"},
      {tokenizer_json("WordLevel", R"({"<pad>":0,"<unk>":1,"<s>":2,"</s>":3,"<image>":4,"red":9})"),
       "outside [0, 6)"},
      {tokenizer_json("WordLevel",
                      R"({"<pad>":0,"<unk>":1,"<s>":2,"</s>":3,"<image>":4,"red":"5"})"),
       "integer id"},
  };
  for (const Case& c : cases) {
    std::string e = load_error(d, c.text);
    EXPECT_NE(e.find("[Tokenizer::load]"), std::string::npos) << e;
    EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << e;
    EXPECT_NE(e.find(c.what), std::string::npos) << c.what << " -> " << e;
  }
  // An added token whose id disagrees with the vocab.
  std::string wrong = tokenizer_json();
  wrong.replace(wrong.find(R"({"id":4,)"), 8, R"({"id":5,)");
  EXPECT_NE(load_error(d, wrong).find("'<image>' has id 5"), std::string::npos);
  EXPECT_NE(load_error(d, "[1,2]").find("top level"), std::string::npos);
  EXPECT_THROW(Tokenizer::load(d / "missing.json"), std::runtime_error);
}
