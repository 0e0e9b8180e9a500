// Tests for ressa/io/tokenizer's BPE model against golden encodings written by Hugging Face's
// JavaScript port of `tokenizers` (tests/reference/tokenizer_reference.mjs): phi-3 (SentencePiece
// style BPE with byte fallback), the same file in the Metaspace layout of newer Llama / Mistral
// files ("phi3_metaspace", made by phi3_metaspace_json() exactly as the reference script's
// phi3_metaspace() does) and Qwen2 (byte-level BPE with the Qwen2 split regex). For every line of
// tests/fixtures/tokenizers/corpus.jsonl: encode with and without special tokens and decode with
// and without skipping special tokens. Also: special tokens from tokenizer_config.json, the
// <image> token, and clear errors for bad BPE files.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "ressa/io/tokenizer.h"
#include "error_of.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::io::Tokenizer;
using ressa::test::TempDir;
using ojson = nlohmann::ordered_json;

namespace {

const fs::path kDir = fs::path(RESSA_SOURCE_DIR) / "tests/fixtures/tokenizers";

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::vector<std::string> read_lines(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + p.string());
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  return lines;
}

// phi-3's tokenizer.json in the Metaspace layout: the reference script's phi3_metaspace() edit.
std::string phi3_metaspace_json() {
  ojson tok = ojson::parse(read_text(kDir / "phi3/tokenizer.json"));
  tok["normalizer"] = nullptr;
  tok["pre_tokenizer"] = {{"type", "Metaspace"},
                          {"replacement", "\xE2\x96\x81"},
                          {"prepend_scheme", "first"},
                          {"split", false}};
  auto special = [](const char* id, int type_id) {
    return ojson{{"SpecialToken", {{"id", id}, {"type_id", type_id}}}};
  };
  auto sequence = [](const char* id, int type_id) {
    return ojson{{"Sequence", {{"id", id}, {"type_id", type_id}}}};
  };
  tok["post_processor"] = {
      {"type", "TemplateProcessing"},
      {"single", ojson::array({special("<s>", 0), sequence("A", 0)})},
      {"pair",
       ojson::array({special("<s>", 0), sequence("A", 0), special("<s>", 1), sequence("B", 1)})},
      {"special_tokens",
       {{"<s>", {{"id", "<s>"}, {"ids", ojson::array({1})}, {"tokens", ojson::array({"<s>"})}}}}}};
  auto extra = [](int id, const char* content) {
    return ojson{{"id", id},        {"content", content}, {"single_word", false},
                 {"lstrip", false}, {"rstrip", false},    {"normalized", false},
                 {"special", true}};
  };
  tok["added_tokens"].push_back(extra(32011, "<image>"));
  tok["added_tokens"].push_back(extra(32012, "<pad>"));
  return tok.dump();
}

Tokenizer load_case(const std::string& name) {
  if (name == "phi3_metaspace") {
    const fs::path cfg = kDir / "phi3/tokenizer_config.json";
    return Tokenizer::parse(phi3_metaspace_json(), "phi3_metaspace", read_text(cfg), cfg.string());
  }
  return Tokenizer::load_dir((kDir / name).string());
}

std::string show_ids(const std::vector<int64_t>& ids) {
  std::string s = "[";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? "," : "") + std::to_string(ids[i]);
  return s + "]";
}

// A string as a JSON literal; invalid UTF-8 shows as U+FFFD instead of throwing.
std::string quote(const std::string& s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Compares every corpus line with its golden line, reporting the first 20 mismatching lines
// (line number, text, what differs) and then how many lines differ.
void check_golden(const std::string& name) {
  SCOPED_TRACE(name);
  const Tokenizer t = load_case(name);
  const std::vector<std::string> corpus = read_lines(kDir / "corpus.jsonl");
  const std::vector<std::string> golden = read_lines(kDir / (name + ".golden.jsonl"));
  ASSERT_EQ(corpus.size(), golden.size())
      << "corpus.jsonl and " << name << ".golden.jsonl differ in length";
  ASSERT_GT(corpus.size(), 100u);
  size_t bad_lines = 0, reported = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    const std::string text = nlohmann::json::parse(corpus[i]).get<std::string>();
    const nlohmann::json g = nlohmann::json::parse(golden[i]);
    const auto ids = g.at("ids").get<std::vector<int64_t>>();
    const auto plain = g.contains("plain") ? g["plain"].get<std::vector<int64_t>>() : ids;
    const auto dec = g.at("dec").get<std::string>();
    const auto skip = g.contains("skip") ? g["skip"].get<std::string>() : dec;

    std::string what;
    try {
      const auto got_ids = t.encode(text, true);
      if (got_ids != ids)
        what += "\n  encode(text, true):  " + show_ids(got_ids) +
                "\n  expected:            " + show_ids(ids);
      const auto got_plain = t.encode(text, false);
      if (got_plain != plain)
        what += "\n  encode(text, false): " + show_ids(got_plain) +
                "\n  expected:            " + show_ids(plain);
      const std::string got_dec = t.decode(ids, false);
      if (got_dec != dec)
        what +=
            "\n  decode(ids, false):  " + quote(got_dec) + "\n  expected:            " + quote(dec);
      const std::string got_skip = t.decode(ids, true);
      if (got_skip != skip)
        what += "\n  decode(ids, true):   " + quote(got_skip) +
                "\n  expected:            " + quote(skip);
    } catch (const std::exception& e) {
      what += std::string("\n  threw: ") + e.what();
    }
    if (what.empty()) continue;
    ++bad_lines;
    if (++reported <= 20)
      ADD_FAILURE() << name << ": corpus.jsonl line " << (i + 1) << ": " << corpus[i] << what;
  }
  EXPECT_EQ(bad_lines, 0u) << name << ": " << bad_lines << " of " << corpus.size()
                           << " corpus lines differ from the golden encodings";
}

// A small valid BPE tokenizer.json; the parts can be replaced.
ojson small_bpe() {
  return ojson{{"version", "1.0"},
               {"truncation", nullptr},
               {"padding", nullptr},
               {"added_tokens", ojson::array({ojson{{"id", 0},
                                                    {"content", "<unk>"},
                                                    {"single_word", false},
                                                    {"lstrip", false},
                                                    {"rstrip", false},
                                                    {"normalized", false},
                                                    {"special", true}}})},
               {"normalizer", nullptr},
               {"pre_tokenizer",
                {{"type", "Metaspace"},
                 {"replacement", "\xE2\x96\x81"},
                 {"prepend_scheme", "first"},
                 {"split", false}}},
               {"post_processor", nullptr},
               {"decoder", nullptr},
               {"model",
                {{"type", "BPE"},
                 {"dropout", nullptr},
                 {"unk_token", "<unk>"},
                 {"fuse_unk", true},
                 {"byte_fallback", false},
                 {"vocab", {{"<unk>", 0}, {"a", 1}, {"b", 2}, {"ab", 3}, {"\xE2\x96\x81", 4}}},
                 {"merges", ojson::array({"a b"})}}}};
}

std::string load_error(const TempDir& d, const std::string& text) {
  const std::string p = d / "tokenizer.json";
  std::ofstream(p) << text;
  return ressa::test::error_of([&] { Tokenizer::load(p); });
}

}  // namespace

TEST(IoTokenizerBpe, GoldenPhi3) { check_golden("phi3"); }
TEST(IoTokenizerBpe, GoldenPhi3Metaspace) { check_golden("phi3_metaspace"); }
TEST(IoTokenizerBpe, GoldenQwen2) { check_golden("qwen2"); }

TEST(IoTokenizerBpe, SpecialTokensFromConfig) {
  const Tokenizer phi3 = Tokenizer::load_dir((kDir / "phi3").string());
  EXPECT_EQ(phi3.model_type(), "BPE");
  EXPECT_EQ(phi3.vocab_size(), 32011);
  EXPECT_EQ(phi3.bos_id(), 1);  // "<s>"
  EXPECT_EQ(phi3.eos_id(), phi3.token_to_id("<|endoftext|>"));
  EXPECT_EQ(phi3.eos_id(), 32000);
  EXPECT_EQ(phi3.pad_id(), 32000);
  EXPECT_EQ(phi3.unk_id(), 0);
  EXPECT_FALSE(phi3.add_bos_token());
  EXPECT_FALSE(phi3.add_eos_token());
  EXPECT_FALSE(phi3.has_image());
  EXPECT_THROW(phi3.image_id(), std::invalid_argument);
  EXPECT_TRUE(phi3.is_special(32000));
  EXPECT_FALSE(phi3.is_special(2));  // "</s>" is an added token but not special in phi-3
  EXPECT_FALSE(phi3.is_special(100));
  EXPECT_EQ(phi3.token_to_id("<|user|>"), 32010);

  // Without the config only the model's unk_token is known.
  const Tokenizer bare = Tokenizer::load((kDir / "phi3/tokenizer.json").string());
  EXPECT_EQ(bare.unk_id(), 0);
  EXPECT_FALSE(bare.has_bos());
  EXPECT_FALSE(bare.has_eos());
  EXPECT_FALSE(bare.has_pad());
  EXPECT_THROW(bare.bos_id(), std::invalid_argument);
  EXPECT_FALSE(bare.add_bos_token());

  // Qwen2: bos_token and unk_token are null in the config.
  const Tokenizer qwen = Tokenizer::load_dir((kDir / "qwen2").string());
  EXPECT_FALSE(qwen.has_bos());
  EXPECT_FALSE(qwen.has_unk());
  EXPECT_EQ(qwen.eos_id(), qwen.token_to_id("<|endoftext|>"));
  EXPECT_EQ(qwen.pad_id(), qwen.eos_id());
  EXPECT_FALSE(qwen.add_bos_token());
  EXPECT_EQ(qwen.token_to_id("<|im_start|>"), 151644);

  // add_bos_token / add_eos_token are read from the config.
  TempDir d;
  fs::copy_file(kDir / "phi3/tokenizer.json", d / "tokenizer.json");
  nlohmann::json cfg = nlohmann::json::parse(read_text(kDir / "phi3/tokenizer_config.json"));
  cfg["add_bos_token"] = true;
  cfg["add_eos_token"] = true;
  cfg["bos_token"] = {{"content", "<s>"}, {"lstrip", false}};
  cfg["unk_token"] = nullptr;
  std::ofstream(d / "tokenizer_config.json") << cfg.dump();
  const Tokenizer edited = Tokenizer::load_dir(d.str());
  EXPECT_TRUE(edited.add_bos_token());
  EXPECT_TRUE(edited.add_eos_token());
  EXPECT_EQ(edited.bos_id(), 1);
  EXPECT_FALSE(edited.has_unk());
  // A config token outside the vocab is an error naming the field.
  cfg["eos_token"] = "<nope>";
  std::ofstream(d / "tokenizer_config.json") << cfg.dump();
  try {
    Tokenizer::load_dir(d.str());
    ADD_FAILURE() << "expected an error for eos_token '<nope>'";
  } catch (const std::runtime_error& e) {
    const std::string w = e.what();
    EXPECT_NE(w.find("tokenizer_config.json"), std::string::npos) << w;
    EXPECT_NE(w.find("eos_token"), std::string::npos) << w;
    EXPECT_NE(w.find("'<nope>'"), std::string::npos) << w;
  }
}

TEST(IoTokenizerBpe, ImageToken) {
  const fs::path cfg = kDir / "phi3/tokenizer_config.json";
  const Tokenizer t =
      Tokenizer::parse(phi3_metaspace_json(), "phi3_metaspace", read_text(cfg), cfg.string());
  ASSERT_TRUE(t.has_image());
  EXPECT_EQ(t.image_id(), 32011);
  EXPECT_EQ(t.token_to_id("<image>"), 32011);
  EXPECT_EQ(t.token_to_id("<pad>"), 32012);
  EXPECT_EQ(t.vocab_size(), 32013);
  EXPECT_TRUE(t.is_special(32011));
  EXPECT_EQ(t.pad_id(), 32000);  // the config's pad_token, <|endoftext|>, not the added <pad>
  const auto ids = t.encode("<image>\nWhat is shown?", true);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids[0], 1);  // <s> from the TemplateProcessing post-processor
  EXPECT_EQ(ids[1], 32011);
  EXPECT_EQ(t.encode("<image>\nWhat is shown?", false),
            std::vector<int64_t>(ids.begin() + 1, ids.end()));
  EXPECT_EQ(t.decode(ids, true), "\nWhat is shown?");
  EXPECT_EQ(t.decode(ids, false), "<s><image>\nWhat is shown?");
  // The image token inside a word is matched literally, as many times as it occurs.
  const auto two = t.encode("a<image>b<image>", false);
  EXPECT_EQ(std::count(two.begin(), two.end(), int64_t(32011)), 2);

  // Qwen2's file has "<image>" as an added token too.
  const Tokenizer qwen = Tokenizer::load_dir((kDir / "qwen2").string());
  ASSERT_TRUE(qwen.has_image());
  EXPECT_EQ(qwen.image_id(), 151646);
  EXPECT_EQ(qwen.encode("<image>", false), (std::vector<int64_t>{151646}));
}

TEST(IoTokenizerBpe, SmallFileLoads) {
  TempDir d;
  ASSERT_EQ(load_error(d, small_bpe().dump()), "<no error>");
  const Tokenizer t = Tokenizer::load(d / "tokenizer.json");
  EXPECT_EQ(t.model_type(), "BPE");
  // "ab" merges; "c" is unknown and consecutive unknowns fuse (fuse_unk).
  EXPECT_EQ(t.encode("ab", false), (std::vector<int64_t>{4, 3}));
  EXPECT_EQ(t.encode("abcc", false), (std::vector<int64_t>{4, 3, 0}));
  EXPECT_THROW(t.decode({99}), std::invalid_argument);
}

TEST(IoTokenizerBpe, BadFiles) {
  TempDir d;
  struct Case {
    std::string name;
    ojson file;
    std::vector<std::string> what;  // each must appear in the message
  };
  std::vector<Case> cases;
  {
    ojson f = small_bpe();
    f["model"]["merges"] = ojson::array({"a b", "a zz"});
    cases.push_back(
        {"merge token outside the vocab", f, {"model.merges[1]", "'zz'", "not in the vocab"}});
  }
  {
    ojson f = small_bpe();
    f["model"]["merges"] = ojson::array({ojson::array({"b", "a"})});  // "ba" is not in the vocab
    cases.push_back(
        {"merge result outside the vocab", f, {"model.merges[0]", "'ba'", "not in the vocab"}});
  }
  {
    ojson f = small_bpe();
    f["model"]["merges"] = ojson::array({"a b c"});
    cases.push_back({"malformed merge", f, {"model.merges[0]", "'a b c'"}});
  }
  {
    ojson f = small_bpe();
    f["pre_tokenizer"] = {{"type", "BertPreTokenizer"}};
    cases.push_back({"unsupported pre-tokenizer",
                     f,
                     {"pre_tokenizer.type", "unsupported pre-tokenizer 'BertPreTokenizer'"}});
  }
  {
    ojson f = small_bpe();
    f["pre_tokenizer"] = {
        {"type", "Sequence"},
        {"pretokenizers", ojson::array({{{"type", "ByteLevel"}}, {{"type", "Digits"}}})}};
    cases.push_back({"unsupported pre-tokenizer in a Sequence",
                     f,
                     {"pre_tokenizer.pretokenizers[1].type", "'Digits'"}});
  }
  {
    ojson f = small_bpe();
    f["pre_tokenizer"] = {{"type", "Whitespace"}};
    cases.push_back({"Whitespace with BPE", f, {"pre_tokenizer.type", "'Whitespace'"}});
  }
  {
    ojson f = small_bpe();
    f["normalizer"] = {{"type", "NFKC"}};
    cases.push_back(
        {"unsupported normalizer", f, {"normalizer.type", "unsupported normalizer 'NFKC'"}});
  }
  {
    ojson f = small_bpe();
    f["model"]["unk_token"] = "<missing>";
    cases.push_back({"unk_token outside the vocab", f, {"model.unk_token", "'<missing>'"}});
  }
  {
    ojson f = small_bpe();
    f["model"]["dropout"] = 0.1;
    cases.push_back({"dropout", f, {"model.dropout"}});
  }
  {
    ojson f = small_bpe();
    f["model"].erase("merges");
    cases.push_back({"no merges", f, {"model.merges"}});
  }
  {
    ojson f = small_bpe();
    f["model"]["type"] = "Unigram";
    cases.push_back(
        {"unsupported model", f, {"model.type", "unsupported tokenizer model type 'Unigram'"}});
  }
  for (const Case& c : cases) {
    const std::string e = load_error(d, c.file.dump());
    EXPECT_NE(e.find("[Tokenizer::load]"), std::string::npos) << c.name << ": " << e;
    EXPECT_NE(e.find("tokenizer.json"), std::string::npos) << c.name << ": " << e;
    for (const std::string& w : c.what)
      EXPECT_NE(e.find(w), std::string::npos) << c.name << ": '" << w << "' not in: " << e;
  }
}
