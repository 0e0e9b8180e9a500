// `ressa generate` and `ressa tokenize` through the built binary, on the shipped ShapesVQA
// teacher: generate's prompt (chat template + tokenizer + image processor) is the one eval
// scores, so its answers are eval's predictions; tokenize prints the tokenizer's ids; bad input
// ends with one error line and exit 1.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_run.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::test::read_json;

namespace {
const fs::path kModel = fs::path(RESSA_SOURCE_DIR) / "models" / "shapes-small";
}

TEST(CliGenerate, AnswersAreEvalsPredictions) {
  ressa::test::TempDir t;
  auto r = ressa::test::run_ressa("data --out " + (t / "data").string() + " --train 4 --val 4 --test 8", t.path);
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::string pred = (t / "pred.jsonl").string();
  r = ressa::test::run_ressa("eval --model " + kModel.string() + " --data " + (t / "data").string() +
                                 " --limit 8 --threads 1 --predictions " + pred,
                             t.path);
  ASSERT_EQ(r.rc, 0) << r.err;
  std::ifstream preds(pred), test(t / "data" / "test.jsonl");
  int n = 0;
  for (std::string pl, tl; std::getline(preds, pl) && std::getline(test, tl); ++n) {
    const auto p = nlohmann::json::parse(pl), ex = nlohmann::json::parse(tl);
    const fs::path json = t / ("gen" + std::to_string(n) + ".json");
    r = ressa::test::run_ressa("generate --model " + kModel.string() + " --image " +
                                   (t / "data" / ex["image"].get<std::string>()).string() + " --prompt \"" +
                                   ex["question"].get<std::string>() + "\" --max-new-tokens 6 --threads 1 --json " +
                                   json.string(),
                               t.path);
    ASSERT_EQ(r.rc, 0) << r.err;
    const auto g = read_json(json);
    EXPECT_EQ(g["text"], p["prediction"]) << ex["question"];
    EXPECT_EQ(r.out, p["prediction"].get<std::string>() + "\n");  // streamed to stdout
    EXPECT_EQ(g["prompt_tokens"], g["prompt_ids"].size());
    EXPECT_EQ(g["output_ids"].back(), 3);  // </s> ends it
    for (const char* k : {"seconds", "tokens_per_second"}) EXPECT_TRUE(g.contains(k)) << k;
  }
  EXPECT_EQ(n, 8);
}

TEST(CliGenerate, TokenizePrintsIdsAndTokens) {
  ressa::test::TempDir t;
  std::ofstream(t / "in.jsonl") << "\"what color is the circle ?\"\n\n\"red\"\n";
  auto r = ressa::test::run_ressa("tokenize --model " + kModel.string() + " --file " + (t / "in.jsonl").string() +
                                      " --json " + (t / "tok.json").string(),
                                  t.path);
  ASSERT_EQ(r.rc, 0) << r.err;
  const auto j = read_json(t / "tok.json");
  ASSERT_EQ(j["items"].size(), 2u);
  EXPECT_EQ(j["items"][0]["tokens"], nlohmann::json({"what", "color", "is", "the", "circle", "?"}));
  EXPECT_EQ(j["items"][0]["ids"].size(), 6u);
  EXPECT_EQ(j["items"][1]["text"], "red");
  EXPECT_NE(r.out.find("\"red\""), std::string::npos);
}

TEST(CliGenerate, BadInputIsOneErrorLine) {
  ressa::test::TempDir t;
  std::ofstream(t / "bad.png") << "not a png";
  const std::string m = " --model " + kModel.string();
  for (const std::string& args :
       {"generate" + m + " --image " + (t / "missing.png").string() + " --prompt hi",
        "generate" + m + " --image " + (t / "bad.png").string() + " --prompt hi",
        "generate" + m + " --image " + (kModel.parent_path().parent_path() / "tests/fixtures/red16_q95.jpg").string() +
            " --prompt hi --prompt-format \"{bos} {question}\"",
        "tokenize" + m + " --file " + (t / "missing.txt").string()}) {
    const auto r = ressa::test::run_ressa(args, t.path);
    EXPECT_EQ(r.rc, 1) << args << "\n" << r.err;
    EXPECT_TRUE(ressa::test::has_error_line(r.err)) << args << "\n" << r.err;
  }
}
