// `ressa generate` (chat template + tokenizer + image processor + greedy decoding, streamed) and
// `ressa tokenize` (token ids and tokens of text, as Hugging Face's tokenizers runs tokenizer.json).
#include <filesystem>
#include <fstream>
#include <iostream>

#include "common.h"
#include "ressa/core/error.h"
#include "ressa/data/processor.h"
#include "ressa/eval/generate.h"
#include "ressa/model/checkpoint.h"

namespace ressa::cli {

namespace fs = std::filesystem;

void register_generate(CLI::App& app) {
  struct Flags {
    ComputeFlags c;
    std::string model, image, prompt, prompt_format;
    int64_t max_new_tokens = 32;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("generate", "answer a prompt about an image with greedy decoding, streaming the text");
  cmd->add_option("--model", f->model, "model directory (dense, pruned, repaired or exported)")->required();
  cmd->add_option("--image", f->image, "image file (JPEG or PNG)")->required();
  cmd->add_option("--prompt", f->prompt, "the question (rendered through the model's chat template)")->required();
  cmd->add_option("--max-new-tokens", f->max_new_tokens, "most tokens to generate")->check(CLI::PositiveNumber);
  cmd->add_option("--prompt-format", f->prompt_format,
                  "replace the chat template: text with {image} and {question}, e.g. \"USER: {image}\\n{question} ASSISTANT:\"");
  add_compute_flags(cmd, f->c, true);
  cmd->callback([f] {
    require_dir("--model", f->model, "model directory");
    check_json_flag(f->c, {{"--model", f->model}, {"--image", f->image}});
    // Everything that can be wrong with the inputs is found before the weights are read.
    const auto image = data::load_image(f->image);
    const auto cfg = io::load_config((fs::path(f->model) / "config.json").string());
    const auto proc = data::Processor::load_dir(f->model, cfg, f->prompt_format);
    const auto prompt = proc.prompt(f->prompt, /*with_image=*/true);
    const auto px = proc.pixels(image);
    auto rt = setup(f->c);
    model::LoadOptions lo;
    lo.release_dense = true;  // inference only
    lo.map_weights = true;
    auto lm = model::load_model(f->model, rt.device, lo);
    auto pixels = torch::from_blob(const_cast<float*>(px.pixels.data()), {1, 3, px.height, px.width}, torch::kFloat32);
    eval::GenerateOptions go;
    go.max_new_tokens = f->max_new_tokens;
    go.eos_ids = proc.eos_ids();
    std::vector<int64_t> out;
    std::string shown;  // text printed so far: each step prints what its token added
    auto res = eval::generate_greedy(lm.model, prompt.ids, pixels.clone(), go, rt.device, [&](int64_t id) {
      out.push_back(id);
      const std::string text = proc.tokenizer().decode(out, /*skip_special=*/true);
      // A token may end inside a UTF-8 character or change earlier text when decoded with the
      // next one: print only a stable extension.
      if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0 &&
          (static_cast<unsigned char>(text.back()) & 0xC0) != 0x80) {
        std::cout << text.substr(shown.size()) << std::flush;
        shown = text;
      }
    });
    const std::string text = proc.tokenizer().decode(res.output_ids, /*skip_special=*/true);
    if (text.size() > shown.size() && text.compare(0, shown.size(), shown) == 0) std::cout << text.substr(shown.size());
    std::cout << "\n";
    const double decode_s = res.seconds - res.prefill_seconds;
    const double tps = res.output_ids.size() > 1 && decode_s > 0 ? double(res.output_ids.size() - 1) / decode_s : 0.0;
    info("generate: " + std::to_string(prompt.ids.size()) + " prompt tokens, " + std::to_string(res.output_ids.size()) +
         " new tokens in " + std::to_string(res.seconds) + " s (" + std::to_string(tps) + " tokens/s after the prompt)");
    write_json(f->c.json_path, {{"prompt", prompt.text},
                                {"prompt_ids", prompt.ids},
                                {"output_ids", res.output_ids},
                                {"text", text},
                                {"prompt_tokens", prompt.ids.size()},
                                {"seconds", res.seconds},
                                {"prefill_seconds", res.prefill_seconds},
                                {"tokens_per_second", tps},
                                {"threads", rt.threads}});
  });
}

namespace {
// The strings of --file: one per line, or in a .jsonl file one JSON string per line (so a string
// can hold newlines). Empty lines of a .jsonl file are skipped.
std::vector<std::string> read_texts(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  RESSA_CHECK(in, "[tokenize] ", path, ": cannot read");
  const bool jsonl = fs::path(path).extension() == ".jsonl";
  std::vector<std::string> texts;
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (!jsonl) {
      texts.push_back(line);
      continue;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      fail("[tokenize] ", path, ":", line_no, ": not valid JSON: ", e.what());
    }
    RESSA_CHECK(j.is_string(), "[tokenize] ", path, ":", line_no, ": each line must be a JSON string");
    texts.push_back(j.get<std::string>());
  }
  return texts;
}
}  // namespace

void register_tokenize(CLI::App& app) {
  struct Flags {
    std::string model, text, file, json_path;
    bool no_special = false;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("tokenize", "token ids and tokens of text, as Hugging Face's tokenizers runs tokenizer.json");
  cmd->add_option("--model", f->model, "model directory (its tokenizer.json and tokenizer_config.json)")->required();
  auto* text = cmd->add_option("--text", f->text, "the text to tokenize");
  auto* file = cmd->add_option("--file", f->file, "one text per line (a .jsonl file: one JSON string per line)");
  text->excludes(file);
  cmd->add_flag("--no-special-tokens", f->no_special, "leave out the special tokens the post-processor adds (e.g. <s>)");
  cmd->add_option("--json", f->json_path, "write {items: [{text, ids, tokens}]} to this path");
  cmd->callback([f] {
    RESSA_CHECK_ARG(!f->text.empty() || !f->file.empty(), "[tokenize] give --text or --file");
    require_dir("--model", f->model, "model directory");
    const auto tok = io::Tokenizer::load_dir(f->model);
    const std::vector<std::string> texts = f->file.empty() ? std::vector<std::string>{f->text} : read_texts(f->file);
    nlohmann::json items = nlohmann::json::array();
    for (const auto& t : texts) {
      const auto ids = tok.encode(t, !f->no_special);
      std::vector<std::string> tokens;
      for (int64_t id : ids) tokens.push_back(tok.id_to_token(id));
      std::cout << nlohmann::json(t).dump() << "\n  ids " << nlohmann::json(ids).dump() << "\n  tokens "
                << nlohmann::json(tokens).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      items.push_back({{"text", t}, {"ids", ids}, {"tokens", tokens}});
    }
    write_json(f->json_path, {{"items", items}});
  });
}

}  // namespace ressa::cli
