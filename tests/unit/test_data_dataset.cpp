// Tests for ressa/data/dataset: JSONL round trip, blank lines, and one hand-made bad line per
// validation rule, each error naming path:line.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ressa/data/dataset.h"

#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::data::VqaExample;

namespace {
using ressa::test::TempDir;

void write_text(const std::string& p, const std::string& s) { std::ofstream(p) << s; }

const char* kGood =
    R"({"id":"a","image":"images/a.png","question":"what color is the circle ?","answer":"red","family":"color"})";

// Error message for a file whose second line is `bad`.
std::string error_for(const TempDir& d, const std::string& bad) {
  const std::string p = d / "bad.jsonl";
  write_text(p, std::string(kGood) + "\n" + bad + "\n");
  try {
    ressa::data::read_jsonl(p);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "<no error>";
}
}  // namespace

TEST(DataDataset, RoundTrip) {
  TempDir d;
  std::vector<VqaExample> ex = {
      {"a", "images/a.png", "what color is the circle ?", "red", "color", {}},
      {"b", "img/sub/b.jpg", "Quote \" and unicode \xc3\xa9 ?", "yes", "exist", {"shapes", "v1"}}};
  ressa::data::write_jsonl(d / "train.jsonl", ex);
  auto back = ressa::data::read_split(d.path.string(), "train");
  ASSERT_EQ(back.size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_EQ(back[i].id, ex[i].id);
    EXPECT_EQ(back[i].image, ex[i].image);
    EXPECT_EQ(back[i].question, ex[i].question);
    EXPECT_EQ(back[i].answer, ex[i].answer);
    EXPECT_EQ(back[i].family, ex[i].family);
    EXPECT_EQ(back[i].sources, ex[i].sources);
  }
  EXPECT_EQ(ressa::data::image_path("/data/x", back[0]), "/data/x/images/a.png");
}

TEST(DataDataset, SkipsBlankLinesAndIgnoresExtraKeys) {
  TempDir d;
  write_text(
      d / "x.jsonl",
      "\n" + std::string(kGood) + "\r\n   \n" +
          R"({"id":"b","image":"b.png","question":"q","answer":"a","family":"f","extra":1})");
  auto ex = ressa::data::read_jsonl(d / "x.jsonl");
  ASSERT_EQ(ex.size(), 2u);
  EXPECT_EQ(ex[1].image, "b.png");
}

TEST(DataDataset, BadLinesNamePathAndLine) {
  TempDir d;
  const std::string where = d / "bad.jsonl:2:";
  struct Case {
    std::string line, what;
  } cases[] = {
      {R"({"id":"b","image":"b.png",)", "invalid JSON"},
      {R"(["not","an","object"])", "JSON object"},
      {R"({"id":"b","image":"b.png","question":"q","answer":"a"})", "missing field 'family'"},
      {R"({"id":"b","image":"b.png","question":"q","answer":3,"family":"f"})",
       "field 'answer' must be a string"},
      {R"({"id":"b","image":"","question":"q","answer":"a","family":"f"})", "'image' is empty"},
      {R"({"id":"b","image":"images/../../etc/passwd","question":"q","answer":"a","family":"f"})",
       "'..'"},
      {R"({"id":"b","image":"/etc/passwd","question":"q","answer":"a","family":"f"})", "relative"},
      {R"({"id":"a","image":"b.png","question":"q","answer":"a","family":"f"})",
       "duplicate id 'a'"},
      {R"({"id":"b","image":"b.png","question":"q","answer":"a","family":"f","sources":"x"})",
       "'sources'"},
  };
  for (const Case& c : cases) {
    std::string e = error_for(d, c.line);
    EXPECT_NE(e.find("[read_jsonl] " + where), std::string::npos) << c.line << " -> " << e;
    EXPECT_NE(e.find(c.what), std::string::npos) << c.line << " -> " << e;
  }
}

TEST(DataDataset, FileErrors) {
  TempDir d;
  try {
    ressa::data::read_split(d.path.string(), "val");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(d / "val.jsonl"), std::string::npos) << e.what();
  }
  EXPECT_THROW(ressa::data::read_split(d.path.string(), "dev"), std::invalid_argument);
  EXPECT_THROW(ressa::data::read_jsonl(d / "nope.jsonl"), std::runtime_error);
  std::vector<VqaExample> bad = {{"a", "../a.png", "q", "a", "f", {}}};
  EXPECT_THROW(ressa::data::write_jsonl(d / "w.jsonl", bad), std::invalid_argument);
  EXPECT_FALSE(fs::exists(d / "w.jsonl"));
}
