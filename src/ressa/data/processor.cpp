// The LlavaProcessor equivalent (see processor.h).
#include "ressa/data/processor.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ressa/core/error.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ressa::data {

namespace {
std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  RESSA_CHECK(in, "[Processor] ", p.string(), ": cannot read");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool has_template_file(const fs::path& dir) {
  if (fs::exists(dir / "chat_template.jinja") || fs::exists(dir / "chat_template.json")) return true;
  if (!fs::exists(dir / "tokenizer_config.json")) return false;
  try {
    const json j = json::parse(read_text(dir / "tokenizer_config.json"));
    return j.is_object() && j.contains("chat_template") && !j.at("chat_template").is_null();
  } catch (const json::exception&) {
    return true;  // malformed: let ChatTemplate::load_dir report it
  }
}

// --prompt-format, else the directory's template, else (a WordLevel tokenizer: a ressa-trained
// model) ressa's own prompt.
io::ChatTemplate choose_template(const std::string& model_dir, const std::string& prompt_format,
                                 const io::Tokenizer& tok) {
  if (!prompt_format.empty()) return io::ChatTemplate::from_format(prompt_format);
  if (has_template_file(model_dir)) return io::ChatTemplate::load_dir(model_dir);
  RESSA_CHECK(tok.model_type() == "WordLevel", "[Processor] ", model_dir,
              ": no chat template (chat_template.jinja, chat_template.json or tokenizer_config.json "
              "chat_template); give one with --prompt-format, e.g. \"USER: {image}\\n{question} ASSISTANT:\"");
  return io::ChatTemplate::ressa_default();
}
}  // namespace

std::vector<int64_t> parse_generation_eos(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    fail("[Processor] ", where, ": not valid JSON: ", e.what());
  }
  RESSA_CHECK(j.is_object(), "[Processor] ", where, ": top level must be a JSON object");
  std::vector<int64_t> ids;
  if (!j.contains("eos_token_id") || j.at("eos_token_id").is_null()) return ids;
  const json& e = j.at("eos_token_id");
  const auto take = [&](const json& v) {
    RESSA_CHECK(v.is_number_integer() && v.get<int64_t>() >= 0, "[Processor] ", where,
                ": eos_token_id must be a non-negative integer or a list of them, got ", v.dump());
    ids.push_back(v.get<int64_t>());
  };
  if (e.is_array())
    for (const json& v : e) take(v);
  else
    take(e);
  return ids;
}

Processor Processor::load_dir(const std::string& model_dir, const io::LlavaConfig& config,
                              const std::string& prompt_format) {
  const fs::path dir(model_dir);
  io::Tokenizer tok = io::Tokenizer::load_dir(model_dir);
  io::ChatTemplate tmpl = choose_template(model_dir, prompt_format, tok);
  Processor p(std::move(tok), std::move(tmpl), config);
  if (fs::exists(dir / "preprocessor_config.json"))
    p.image_ = ImageProcessor::from_file((dir / "preprocessor_config.json").string());
  if (fs::exists(dir / "generation_config.json"))
    p.eos_ids_ = parse_generation_eos(read_text(dir / "generation_config.json"),
                                      (dir / "generation_config.json").string());
  if (p.eos_ids_.empty() && p.tok_.has_eos()) p.eos_ids_.push_back(p.tok_.eos_id());
  return p;
}

PromptIds Processor::prompt(const std::string& question, bool with_image) const {
  json content = json::array();
  if (with_image) content.push_back({{"type", "image"}});
  content.push_back({{"type", "text"}, {"text", question}});
  const json messages = json::array({{{"role", "user"}, {"content", content}}});
  json extra = json::object();
  // Templates name the special tokens; tokenizer_config.json provides them for real models, the
  // tokenizer for ressa's own.
  if (!template_.variables().contains("bos_token") && tok_.has_bos()) extra["bos_token"] = tok_.id_to_token(tok_.bos_id());
  if (!template_.variables().contains("eos_token") && tok_.has_eos()) extra["eos_token"] = tok_.id_to_token(tok_.eos_id());
  PromptIds out;
  out.text = template_.render(messages, /*add_generation_prompt=*/true, extra);
  // LlavaProcessor tokenizes the prompt with add_special_tokens=True, then each image token
  // stands for the vision tower's features (LlavaConfig image_seq_length).
  const std::vector<int64_t> ids = tok_.encode(out.text, true);
  int64_t images = 0;
  for (int64_t id : ids) {
    if (id == config_.image_token_index) {
      out.ids.insert(out.ids.end(), config_.image_tokens(), id);
      ++images;
    } else {
      out.ids.push_back(id);
    }
  }
  RESSA_CHECK(images == (with_image ? 1 : 0), "[Processor] the rendered prompt has ", images,
              " image tokens (id ", config_.image_token_index, ") for ", with_image ? 1 : 0,
              " image; prompt: ", out.text);
  return out;
}

PixelValues Processor::pixels(const Image& img) const {
  if (image_) return image_->process(img);
  // ressa's own models: squash to S x S (bilinear), then (v / 255 - mean) / std.
  const int S = config_.vision.image_size;
  const Image r = img.width == S && img.height == S ? img : resize_bilinear(img, S, S);
  PixelValues px;
  px.height = px.width = S;
  px.pixels.resize(size_t(3) * S * S);
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < S * S; ++i)
      px.pixels[size_t(c) * S * S + i] =
          (float(r.rgb[size_t(i) * 3 + c]) / 255.0f - config_.image_mean[c]) / config_.image_std[c];
  return px;
}

}  // namespace ressa::data
