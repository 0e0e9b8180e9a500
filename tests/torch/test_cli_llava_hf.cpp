// The whole CLI on a checkpoint in the llava-hf/llava-1.5-7b-hf layout (tiny sizes, random fp16
// weights from tests/reference/llava15_layout_reference.py): a SentencePiece-style BPE
// tokenizer (phi-3's, with llava-hf's <image> and <pad> added), the llava-1.5 chat template in
// chat_template.json, a CLIPImageProcessor preprocessor_config.json, generation_config.json.
// inspect -> tokenize -> generate -> prune (all four methods) -> repair -> eval -> export ->
// generate, checking what a user of such a checkpoint relies on: the prompt transformers would
// build, fp16 weights written back as fp16 with exact zeros, config fields and model files kept,
// and the exported model answering as the pruned one.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "cli_run.h"
#include "ressa/core/atomic_file.h"
#include "ressa/io/safetensors.h"
#include "ressa/model/checkpoint.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;
using ressa::test::read_json;

namespace {

const fs::path kSrc = RESSA_SOURCE_DIR;

// The model directory a llava-hf user has: the fixture's config and weights plus the files the
// hub repository carries beside them.
void assemble(const fs::path& m) {
  fs::create_directories(m);
  for (const char* f : {"config.json", "model.safetensors"})
    fs::copy_file(kSrc / "tests/fixtures/llava15_layout" / f, m / f);
  json tok = json::parse(ressa::read_file((kSrc / "tests/fixtures/tokenizers/phi3/tokenizer.json").string()));
  for (auto [id, content] : {std::pair<int, const char*>{32011, "<image>"}, {32012, "<pad>"}})
    tok["added_tokens"].push_back({{"id", id}, {"content", content}, {"single_word", false}, {"lstrip", false},
                                   {"rstrip", false}, {"normalized", false}, {"special", true}});
  ressa::write_file_atomic((m / "tokenizer.json").string(), tok.dump());
  fs::copy_file(kSrc / "tests/fixtures/tokenizers/phi3/tokenizer_config.json", m / "tokenizer_config.json");
  const std::string tmpl = ressa::read_file((kSrc / "tests/fixtures/chat_templates/llava_1_5.jinja").string());
  ressa::write_file_atomic((m / "chat_template.json").string(), json({{"chat_template", tmpl}}).dump(2));
  ressa::write_file_atomic((m / "preprocessor_config.json").string(),
                           json::parse(R"({"crop_size": {"height": 28, "width": 28}, "do_center_crop": true,
      "do_convert_rgb": true, "do_normalize": true, "do_rescale": true, "do_resize": true,
      "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
      "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "LlavaProcessor",
      "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 28}})")
                               .dump(2));
  ressa::write_file_atomic((m / "generation_config.json").string(),
                           R"({"bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 32012})");
}

}  // namespace

TEST(CliLlavaHf, Llava15LayoutEndToEnd) {
  ressa::test::TempDir t;
  const fs::path m = t / "llava-1.5-tiny-hf";
  assemble(m);
  auto run = [&](const std::string& args) {
    const bool compute = args.rfind("export", 0) != 0 && args.rfind("data", 0) != 0;
    auto r = ressa::test::run_ressa(args + (compute ? " --threads 2" : ""), t.path);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
  };
  const std::string image = (kSrc / "tests/fixtures/red16_q95.jpg").string();

  // inspect: the sizes transformers builds (CLIPVisionConfig / LlamaConfig defaults filled in).
  run("inspect --model " + m.string() + " --config-only --json " + (t / "inspect.json").string());
  const json ins = read_json(t / "inspect.json");
  EXPECT_EQ(ins["parameters"]["total"], 1046752);  // counted by the python reference
  EXPECT_EQ(ins["config"]["vision"]["hidden_act"], "quick_gelu");

  // generate: the llava-1.5 prompt, the image token expanded to the 4 patch features.
  run("generate --model " + m.string() + " --image " + image +
      " --prompt \"What is this?\" --max-new-tokens 4 --json " + (t / "g_dense.json").string());
  const json g = read_json(t / "g_dense.json");
  EXPECT_EQ(g["prompt"], "USER: <image>\nWhat is this? ASSISTANT:");
  EXPECT_EQ(std::count(g["prompt_ids"].begin(), g["prompt_ids"].end(), json(32011)), 4);
  EXPECT_EQ(g["output_ids"].size(), 4u);

  // LLaVA-format data: conversations (one and two rounds) about photos of odd sizes, PNG and JPEG,
  // images relative to --image-folder.
  const fs::path photos = kSrc / "tests/fixtures/image_processor/inputs";
  json conv = json::array();
  int k = 0;
  for (const auto& e : fs::directory_iterator(photos)) {
    json turns = json::array({{{"from", "human"}, {"value", "<image>\nWhat is in the picture?"}},
                              {{"from", "gpt"}, {"value", k % 2 ? "A photo." : "Colours."}}});
    if (k % 3 == 0) {
      turns.push_back({{"from", "human"}, {"value", "Describe it in one word."}});
      turns.push_back({{"from", "gpt"}, {"value", "Bright"}});
    }
    conv.push_back({{"id", "c" + std::to_string(k++)}, {"image", e.path().filename().string()}, {"conversations", turns}});
  }
  ASSERT_GE(k, 20);
  const fs::path conv_file = t / "conv" / "llava.json";
  fs::create_directories(conv_file.parent_path());
  ressa::write_file_atomic(conv_file.string(), conv.dump(1));
  const std::string conv_data = " --data " + conv_file.string() + " --image-folder " + photos.string();

  // prune with every method; fp16 in, fp16 out, every pruned zero exact, files and fields kept.
  run("data --out " + (t / "data").string() + " --train 16 --val 8 --test 8");
  for (const std::string method : {"magnitude", "wanda", "sparsegpt", "dsnot"}) {
    const fs::path p = t / ("p_" + method);
    run("prune --model " + m.string() + conv_data + " --method " + method +
        " --sparsity 0.5 --calib-samples 8 --out " + p.string());
    auto st = ressa::io::SafetensorsFile::open((p / "model.safetensors").string());
    EXPECT_EQ(st.at("language_model.model.layers.0.mlp.up_proj.weight").dtype, ressa::io::DType::F16) << method;
    const json c = read_json(p / "config.json");
    EXPECT_EQ(c["torch_dtype"], "float16");
    EXPECT_EQ(c["ignore_index"], -100);
    EXPECT_EQ(c["transformers_version"], "4.36.0.dev0");
    EXPECT_EQ(c["text_config"]["_name_or_path"], "lmsys/vicuna-7b-v1.5");
    for (const char* f : {"tokenizer.json", "tokenizer_config.json", "chat_template.json", "preprocessor_config.json",
                          "generation_config.json"})
      EXPECT_TRUE(fs::exists(p / f)) << method << " " << f;
    auto lm = ressa::model::load_model(p.string(), torch::kCPU);  // masks: weights zero wherever pruned
    int64_t targets = 0;
    for (auto& [name, lin] : lm.model->linears())
      if (lin->mask().defined()) {
        ++targets;
        EXPECT_EQ(lin->weight.masked_select(lin->mask() == 0).abs().max().item<float>(), 0.0f) << name;
      }
    EXPECT_EQ(targets, 2 * 6 + 2 * 7) << "vision blocks past vision_feature_layer -2 are not targets";
  }

  // A dataset directory still calibrates a real checkpoint (its questions through the chat template).
  run("prune --model " + m.string() + " --data " + (t / "data").string() +
      " --method wanda --sparsity 0.5 --calib-samples 8 --out " + (t / "p_dir").string());

  // repair -> eval; export -> generate answers as the pruned model does.
  const fs::path p = t / "p_wanda", r = t / "repaired", e = t / "exported";
  run("repair --dense " + m.string() + " --pruned " + p.string() + conv_data + " --steps 2 --batch 4 --out " +
      r.string() + " --json " + (t / "repair.json").string());
  EXPECT_EQ(read_json(t / "repair.json")["steps"], 2);
  run("eval --model " + r.string() + conv_data + " --limit 6 --predictions " + (t / "pred.jsonl").string() +
      " --json " + (t / "eval.json").string());
  const json ev = read_json(t / "eval.json");
  EXPECT_DOUBLE_EQ(ev["sparsity"]["overall"].get<double>(), 0.5);
  EXPECT_EQ(ev["n"], 6);
  EXPECT_EQ(ev["families"].size(), 1u);
  EXPECT_TRUE(ev["families"].contains("conversation"));
  const std::string preds = ressa::read_file((t / "pred.jsonl").string());
  EXPECT_NE(preds.find(R"("answer":"Colours.")"), std::string::npos) << "the reference is the first gpt turn";
  run("eval --model " + r.string() + " --data " + (t / "data").string() + " --limit 4 --json " +
      (t / "eval_dir.json").string());
  EXPECT_EQ(read_json(t / "eval_dir.json")["n"], 4);
  // The dense model answers the first question of each conversation as generate does: same prompt.
  run("eval --model " + m.string() + " --data " + conv_file.string() + " --image-folder " + photos.string() +
      " --limit 1 --max-new-tokens 4 --predictions " + (t / "pred_dense.jsonl").string());
  // Bad data: one error line, exit 1.
  ressa::write_file_atomic((t / "conv" / "bad.json").string(),
                           R"([{"id": "x", "image": "a.png", "conversations": [{"from": "gpt", "value": "hi"}]}])");
  auto bad = ressa::test::run_ressa("eval --model " + m.string() + " --data " + (t / "conv" / "bad.json").string(), t.path);
  EXPECT_EQ(bad.rc, 1);
  EXPECT_NE(bad.err.find("bad.json: item 0 (id 'x')"), std::string::npos) << bad.err;
  bad = ressa::test::run_ressa("eval --model " + m.string() + " --data " + conv_file.string() + " --split val", t.path);
  EXPECT_EQ(bad.rc, 2) << "a usage error";
  EXPECT_NE(bad.err.find("--split"), std::string::npos) << bad.err;
  run("export --model " + p.string() + " --format bitmask --out " + e.string());
  {  // the export's dense parts stay fp16, as the checkpoint was
    auto st = ressa::io::SafetensorsFile::open((e / "model.safetensors").string());
    EXPECT_EQ(st.at("language_model.model.embed_tokens.weight").dtype, ressa::io::DType::F16);
    EXPECT_EQ(st.at("language_model.model.norm.weight").dtype, ressa::io::DType::F16);
    EXPECT_EQ(read_json(e / "config.json")["torch_dtype"], "float16");
    EXPECT_EQ(read_json(e / "config.json")["text_config"]["_name_or_path"], "lmsys/vicuna-7b-v1.5");
  }
  for (const fs::path& d : {p, e, r})
    run("generate --model " + d.string() + " --image " + image + " --prompt \"What is this?\" --max-new-tokens 4 --json " +
        (t / (d.filename().string() + ".json")).string());
  EXPECT_EQ(read_json(t / "exported.json")["output_ids"], read_json(t / "p_wanda.json")["output_ids"]);
  EXPECT_EQ(read_json(t / "repaired.json")["prompt_ids"], g["prompt_ids"]);
}
