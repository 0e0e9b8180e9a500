// Tests for ressa/data/conversation: LLaVA conversation files (valid files, the <image> marker
// handling LLaVA's preprocess_multimodal does, one hand-made bad input per validation rule, each
// error naming the file, the item and the problem) and read_samples over both kinds of --data.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "ressa/data/conversation.h"
#include "ressa/data/dataset.h"

#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::data::Conversation;
using ressa::data::DataSource;

namespace {
using ressa::test::TempDir;

void write_text(const fs::path& p, const std::string& s) {
  fs::create_directories(p.parent_path());
  std::ofstream(p) << s;
}

const char* kWhere = "data/chat.json";

// A valid item; the bad inputs below follow it so that their index is 1, not the default 0.
const char* kGoodItem =
    R"({"id": "a", "image": "a.jpg", "conversations": [{"from": "human", "value": "<image>\nQ?"},
                                                        {"from": "gpt", "value": "A."}]})";

// The message parse_llava_conversations throws for `text`, or "<no error>".
std::string error_for(const std::string& text) {
  try {
    ressa::data::parse_llava_conversations(text, kWhere);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "<no error>";
}

// The turns of an item with id 'b' and image b.jpg, as the second item of a file.
std::string file_with_turns(const std::string& turns) {
  return std::string("[") + kGoodItem + R"(, {"id": "b", "image": "b.jpg", "conversations": )" + turns + "}]";
}
}  // namespace

TEST(DataConversation, ParsesTwoRoundsAndRemovesTheMarker) {
  const std::string text = R"([
    {"id": "000001", "image": "coco/train2017/000000033471.jpg", "source": "coco",
     "conversations": [
       {"from": "human", "value": "<image>\nWhat?"},
       {"from": "gpt", "value": "A bus.", "weight": 1},
       {"from": "human", "value": "  And the color?"},
       {"from": "gpt", "value": "Red."}]},
    {"id": 42, "image": "/abs/img.png",
     "conversations": [{"from": "human", "value": "What?\n<image>"}, {"from": "gpt", "value": "Yes"}]},
    {"id": -7, "image": "c.jpg",
     "conversations": [{"from": "human", "value": " \t<image> Describe it.\r\n"}, {"from": "gpt", "value": "x"}]}
  ])";
  const std::vector<Conversation> c = ressa::data::parse_llava_conversations(text, kWhere);
  ASSERT_EQ(c.size(), 3u);

  EXPECT_EQ(c[0].id, "000001");
  EXPECT_EQ(c[0].image, "coco/train2017/000000033471.jpg");
  ASSERT_EQ(c[0].turns.size(), 4u);
  const std::vector<std::string> roles = {"user", "assistant", "user", "assistant"};
  const std::vector<std::string> texts = {"What?", "A bus.", "  And the color?", "Red."};
  for (size_t t = 0; t < 4; ++t) {
    EXPECT_EQ(c[0].turns[t].role, roles[t]) << t;
    // Only the turn that held the marker is stripped (LLaVA leaves the other turns as written).
    EXPECT_EQ(c[0].turns[t].text, texts[t]) << t;
  }

  EXPECT_EQ(c[1].id, "42");
  EXPECT_EQ(c[1].image, "/abs/img.png");
  ASSERT_EQ(c[1].turns.size(), 2u);
  EXPECT_EQ(c[1].turns[0].role, "user");
  EXPECT_EQ(c[1].turns[0].text, "What?");
  EXPECT_EQ(c[1].turns[1].role, "assistant");
  EXPECT_EQ(c[1].turns[1].text, "Yes");

  EXPECT_EQ(c[2].id, "-7");
  ASSERT_EQ(c[2].turns.size(), 2u);
  EXPECT_EQ(c[2].turns[0].text, "Describe it.");
}

TEST(DataConversation, BadFilesNameTheFile) {
  struct Case {
    std::string text, what;
  } cases[] = {
      {"", "not valid JSON"},
      {"[", "not valid JSON"},
      {std::string("[") + kGoodItem + ",]", "not valid JSON"},
      {R"({"id": "a"})", "expected a JSON list of {id, image, conversations}, got object"},
      {R"("a.json")", "expected a JSON list of {id, image, conversations}, got string"},
      {"[]", "the list is empty"},
  };
  for (const Case& c : cases) {
    const std::string e = error_for(c.text);
    EXPECT_EQ(e, std::string("[conversations] ") + kWhere + ": " + c.what) << c.text;
  }
}

TEST(DataConversation, BadItemsNameTheFileTheItemAndTheProblem) {
  const std::string q = R"({"from": "human", "value": "<image>\nQ?"})";
  const std::string a = R"({"from": "gpt", "value": "A."})";
  const std::string qa = "[" + q + ", " + a + "]";
  // `item` is what the message says between the file and the problem: the index, and the id
  // once it has been read.
  struct Case {
    std::string text, item, what;
  } cases[] = {
      {std::string("[") + kGoodItem + ", 3]", "item 1", "expected an object, got number"},
      {std::string("[") + kGoodItem + R"(, ["b", "b.jpg"]])", "item 1", "expected an object, got array"},
      {std::string("[") + kGoodItem + R"(, {"image": "b.jpg", "conversations": )" + qa + "}]", "item 1",
       "missing or empty 'id'"},
      {std::string("[") + kGoodItem + R"(, {"id": "", "image": "b.jpg", "conversations": )" + qa + "}]", "item 1",
       "missing or empty 'id'"},
      {std::string("[") + kGoodItem + R"(, {"id": 1.5, "image": "b.jpg", "conversations": )" + qa + "}]", "item 1",
       "'id' must be a string or an integer, got number"},
      {std::string("[") + kGoodItem + R"(, {"id": true, "image": "b.jpg", "conversations": )" + qa + "}]", "item 1",
       "'id' must be a string or an integer, got boolean"},
      {std::string("[") + kGoodItem + R"(, {"id": ["b"], "image": "b.jpg", "conversations": )" + qa + "}]",
       "item 1", "'id' must be a string or an integer, got array"},
      {std::string("[") + kGoodItem + R"(, {"id": "b", "conversations": )" + qa + "}]", "item 1 (id 'b')",
       "no 'image'"},
      {std::string("[") + kGoodItem + R"(, {"id": "b", "image": null, "conversations": )" + qa + "}]",
       "item 1 (id 'b')", "no 'image'"},
      {std::string("[") + kGoodItem + R"(, {"id": 9, "image": ["b.jpg", "c.jpg"], "conversations": )" + qa + "}]",
       "item 1 (id '9')", "'image' must be a string (one image per conversation), got array"},
      {std::string("[") + kGoodItem + R"(, {"id": "b", "image": 3, "conversations": )" + qa + "}]",
       "item 1 (id 'b')", "'image' must be a string (one image per conversation), got number"},
      {std::string("[") + kGoodItem + R"(, {"id": "b", "image": "", "conversations": )" + qa + "}]",
       "item 1 (id 'b')", "'image' must be a non-empty path"},
      {std::string("[") + kGoodItem + R"(, {"id": "b", "image": "b\u0000.jpg", "conversations": )" + qa + "}]",
       "item 1 (id 'b')", "'image' must be a non-empty path"},
      {std::string("[") + kGoodItem + R"(, {"id": "b", "image": "b.jpg"}])", "item 1 (id 'b')",
       "'conversations' must be a non-empty list"},
      {file_with_turns("[]"), "item 1 (id 'b')", "'conversations' must be a non-empty list"},
      {file_with_turns(R"({"from": "human", "value": "<image>"})"), "item 1 (id 'b')",
       "'conversations' must be a non-empty list"},
      {file_with_turns(R"("<image>\nQ?")"), "item 1 (id 'b')", "'conversations' must be a non-empty list"},
      {file_with_turns("[" + q + R"(, "A."])"), "item 1 (id 'b')", "conversations[1] must be an object"},
      {file_with_turns(R"([{"value": "<image>\nQ?"}, )" + a + "]"), "item 1 (id 'b')",
       "conversations[0]: 'from' must be a string"},
      {file_with_turns("[" + q + R"(, {"from": 2, "value": "A."}])"), "item 1 (id 'b')",
       "conversations[1]: 'from' must be a string"},
      {file_with_turns(R"([{"from": "human"}, )" + a + "]"), "item 1 (id 'b')",
       "conversations[0]: 'value' must be a string"},
      {file_with_turns("[" + q + R"(, {"from": "gpt", "value": ["A."]}])"), "item 1 (id 'b')",
       "conversations[1]: 'value' must be a string"},
      {file_with_turns("[" + a + ", " + q + "]"), "item 1 (id 'b')",
       "conversations[0]: 'from' is 'gpt', expected 'human'"},
      {file_with_turns("[" + q + R"(, {"from": "human", "value": "Q2"}, )" + a + "]"), "item 1 (id 'b')",
       "conversations[1]: 'from' is 'human', expected 'gpt'"},
      {file_with_turns(R"([{"from": "system", "value": "Be brief."}, )" + q + ", " + a + "]"), "item 1 (id 'b')",
       "conversations[0]: 'from' is 'system', expected 'human'"},
      {file_with_turns(R"([{"from": "human", "value": "Q?"}, )" + a + "]"), "item 1 (id 'b')",
       "the first human turn must hold the <image> marker exactly once, found 0"},
      {file_with_turns(R"([{"from": "human", "value": "<image><image>\nQ?"}, )" + a + "]"), "item 1 (id 'b')",
       "the first human turn must hold the <image> marker exactly once, found 2"},
      // The marker's removal must not join the text around it into a new one.
      {file_with_turns(R"([{"from": "human", "value": "<ima<image>ge>\nQ?"}, )" + a + "]"), "item 1 (id 'b')",
       "conversations[0]: taking out the <image> marker leaves another one"},
      {file_with_turns("[" + q + R"(, {"from": "gpt", "value": "A <image>"}])"), "item 1 (id 'b')",
       "conversations[1]: the <image> marker must be in the first human turn"},
      {file_with_turns("[" + q + ", " + a + R"(, {"from": "human", "value": "<image>\nQ2?"}, )" + a + "]"),
       "item 1 (id 'b')", "conversations[2]: the <image> marker must be in the first human turn"},
      {file_with_turns(R"([{"from": "human", "value": "Q?"}, )" + a + ", " + q + ", " + a + "]"),
       "item 1 (id 'b')", "conversations[2]: the <image> marker must be in the first human turn"},
      {file_with_turns("[" + q + "]"), "item 1 (id 'b')", "the last turn must be a gpt turn (the answer)"},
      {file_with_turns("[" + q + ", " + a + R"(, {"from": "human", "value": "Q2?"}])"), "item 1 (id 'b')",
       "the last turn must be a gpt turn (the answer)"},
      {file_with_turns(R"([{"from": "human", "value": " <image>\n "}, )" + a + "]"), "item 1 (id 'b')",
       "conversations[0]: empty text"},
      {file_with_turns("[" + q + R"(, {"from": "gpt", "value": ""}])"), "item 1 (id 'b')",
       "conversations[1]: empty text"},
  };
  for (const Case& c : cases) {
    const std::string e = error_for(c.text);
    const std::string head = std::string("[conversations] ") + kWhere + ": " + c.item + ": ";
    EXPECT_EQ(e.rfind(head, 0), 0u) << c.text << "\n -> " << e << "\n expected to start with " << head;
    EXPECT_NE(e.find(c.what), std::string::npos) << c.text << "\n -> " << e << "\n expected " << c.what;
  }
}

TEST(DataConversation, ReadsFilesAndNamesMissingOnes) {
  TempDir d;
  write_text(d / "chat.json", std::string("[") + kGoodItem + "]");
  const auto c = ressa::data::read_llava_conversations(d.file("chat.json"));
  ASSERT_EQ(c.size(), 1u);
  EXPECT_EQ(c[0].id, "a");
  EXPECT_EQ(c[0].turns[0].text, "Q?");
  try {
    ressa::data::read_llava_conversations(d.file("nope.json"));
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "[conversations] " + d.file("nope.json") + ": file not found");
  }
}

TEST(DataConversation, ReadSamplesResolvesImagesNextToTheFile) {
  TempDir d;
  const std::string text = R"([
    {"id": "a", "image": "coco/a.jpg",
     "conversations": [{"from": "human", "value": "<image>\nQ1?"}, {"from": "gpt", "value": "A1"}]},
    {"id": 2, "image": "/elsewhere/b.png",
     "conversations": [{"from": "human", "value": "<image>\nQ2?"}, {"from": "gpt", "value": "A2"},
                       {"from": "human", "value": "Q3?"}, {"from": "gpt", "value": "A3"}]}])";
  write_text(d / "sub/chat.json", text);
  const DataSource source(d.file("sub/chat.json"));
  EXPECT_TRUE(source.is_conversation_file());
  // A conversation file has no splits: the split argument does not matter.
  const auto s = ressa::data::read_samples(source, "val");
  EXPECT_EQ(s.where, d.file("sub/chat.json"));
  ASSERT_EQ(s.items.size(), 2u);
  EXPECT_EQ(s.items[0].image_path, (d / "sub/coco/a.jpg").string());
  EXPECT_EQ(s.items[0].family, "conversation");
  EXPECT_EQ(s.items[0].conversation.id, "a");
  EXPECT_EQ(s.items[0].conversation.image, "coco/a.jpg");
  ASSERT_EQ(s.items[0].conversation.turns.size(), 2u);
  EXPECT_EQ(s.items[0].conversation.turns[0].text, "Q1?");
  EXPECT_EQ(s.items[0].conversation.turns[1].text, "A1");
  // An absolute image path is kept as written.
  EXPECT_EQ(s.items[1].image_path, "/elsewhere/b.png");
  EXPECT_EQ(s.items[1].conversation.id, "2");
  EXPECT_EQ(s.items[1].conversation.turns.size(), 4u);

  // With an image folder, relative images resolve there instead (absolute ones stay).
  fs::create_directories(d / "images");
  const auto f = ressa::data::read_samples(DataSource(d.file("sub/chat.json"), d.file("images")), "train");
  ASSERT_EQ(f.items.size(), 2u);
  EXPECT_EQ(f.items[0].image_path, (d / "images/coco/a.jpg").string());
  EXPECT_EQ(f.items[1].image_path, "/elsewhere/b.png");

  // The image folder must exist.
  EXPECT_THROW(ressa::data::read_samples(DataSource(d.file("sub/chat.json"), d.file("no_such_dir")), "train"),
               std::invalid_argument);
  // Bad content is a runtime error naming the file.
  write_text(d / "bad.json", "[]");
  try {
    ressa::data::read_samples(DataSource(d.file("bad.json")), "train");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()), "[conversations] " + d.file("bad.json") + ": the list is empty");
  }
}

TEST(DataConversation, ReadSamplesFromADatasetDirectory) {
  TempDir d;
  ressa::data::write_jsonl(d / "train.jsonl", {{"q1", "images/q1.png", "what color ?", "red", "color", {}},
                                               {"q2", "images/q2.png", "how many ?", "2", "count", {}}});
  const DataSource source(d.str());
  EXPECT_FALSE(source.is_conversation_file());
  const auto s = ressa::data::read_samples(source, "train");
  EXPECT_EQ(s.where, (d / "train.jsonl").string());
  ASSERT_EQ(s.items.size(), 2u);
  const std::vector<std::string> families = {"color", "count"};
  const std::vector<std::string> questions = {"what color ?", "how many ?"};
  const std::vector<std::string> answers = {"red", "2"};
  for (size_t i = 0; i < 2; ++i) {
    const auto& item = s.items[i];
    EXPECT_EQ(item.family, families[i]);
    EXPECT_EQ(item.conversation.id, i == 0 ? "q1" : "q2");
    EXPECT_EQ(item.image_path, (d / (i == 0 ? "images/q1.png" : "images/q2.png")).string());
    ASSERT_EQ(item.conversation.turns.size(), 2u);
    EXPECT_EQ(item.conversation.turns[0].role, "user");
    EXPECT_EQ(item.conversation.turns[0].text, questions[i]);
    EXPECT_EQ(item.conversation.turns[1].role, "assistant");
    EXPECT_EQ(item.conversation.turns[1].text, answers[i]);
  }
  // A missing split is the dataset reader's runtime error.
  EXPECT_THROW(ressa::data::read_samples(source, "val"), std::runtime_error);
}

TEST(DataConversation, ReadSamplesRefusesBadSources) {
  TempDir d;
  ressa::data::write_jsonl(d / "train.jsonl", {{"q1", "images/q1.png", "what color ?", "red", "color", {}}});
  fs::create_directories(d / "images");
  // --image-folder only applies to conversation files.
  try {
    ressa::data::read_samples(DataSource(d.str(), d.file("images")), "train");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--image-folder applies to a LLaVA conversation file"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find(d.str() + " is a dataset directory"), std::string::npos) << e.what();
  }
  // A --data path that does not exist.
  try {
    ressa::data::read_samples(DataSource(d.file("missing.json")), "train");
    FAIL() << "expected an error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("[data] --data " + d.file("missing.json") + ": not found"),
              std::string::npos)
        << e.what();
  }
}
