// The LlavaProcessor equivalent (see processor.h).
#include "ressa/data/processor.h"

#include <algorithm>
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

Processor Processor::for_ressa_model(io::Tokenizer tok, const io::LlavaConfig& config) {
  Processor p(std::move(tok), io::ChatTemplate::ressa_default(), config);
  if (p.tok_.has_eos()) p.eos_ids_.push_back(p.tok_.eos_id());
  return p;
}

std::string Processor::render(const json& messages, bool add_generation_prompt) const {
  json extra = json::object();
  // Templates name the special tokens; tokenizer_config.json provides them for real models, the
  // tokenizer for ressa's own.
  if (!template_.variables().contains("bos_token") && tok_.has_bos()) extra["bos_token"] = tok_.id_to_token(tok_.bos_id());
  if (!template_.variables().contains("eos_token") && tok_.has_eos()) extra["eos_token"] = tok_.id_to_token(tok_.eos_id());
  return template_.render(messages, add_generation_prompt, extra);
}

std::vector<int64_t> Processor::tokenize(const std::string& text, int64_t images) const {
  // LlavaProcessor tokenizes the prompt with add_special_tokens=True, then each image token
  // stands for the vision tower's features (LlavaConfig image_seq_length).
  const std::vector<int64_t> ids = tok_.encode(text, true);
  std::vector<int64_t> out;
  out.reserve(ids.size() + size_t(config_.image_tokens()));
  int64_t found = 0;
  for (int64_t id : ids) {
    if (id == config_.image_token_index) {
      out.insert(out.end(), config_.image_tokens(), id);
      ++found;
    } else {
      out.push_back(id);
    }
  }
  RESSA_CHECK(found == images, "[Processor] the rendered prompt has ", found, " image tokens (id ",
              config_.image_token_index, ") for ", images, " image", images == 1 ? "" : "s", "; prompt: ", text);
  return out;
}

namespace {
// Messages in the list-of-parts form llava-hf templates read; the image goes before the first
// user turn's text.
json messages_of(const std::vector<ChatTurn>& turns, size_t n, bool with_image) {
  json messages = json::array();
  for (size_t i = 0; i < n; ++i) {
    json content = json::array();
    if (i == 0 && with_image) content.push_back({{"type", "image"}});
    content.push_back({{"type", "text"}, {"text", turns[i].text}});
    messages.push_back({{"role", turns[i].role}, {"content", content}});
  }
  return messages;
}

size_t common_prefix(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}
}  // namespace

PromptIds Processor::prompt(const std::string& question, bool with_image) const {
  PromptIds out;
  out.text = render(messages_of({{"user", question}}, 1, with_image), /*add_generation_prompt=*/true);
  out.ids = tokenize(out.text, with_image ? 1 : 0);
  return out;
}

EncodedConversation Processor::encode(const Conversation& c, const std::string& where) const {
  const auto& turns = c.turns;
  RESSA_CHECK(turns.size() >= 2 && turns.size() % 2 == 0, "[Processor] ", where,
              ": a conversation is user, assistant, ... pairs");
  EncodedConversation out;
  const std::vector<int64_t> all = tokenize(render(messages_of(turns, turns.size(), true), false), 1);
  out.prompt = tokenize(render(messages_of(turns, 1, true), true), 1);
  // Assistant spans [begin, end) in `all`, from the renderings that stop before and after each.
  std::vector<std::pair<size_t, size_t>> spans;
  for (size_t j = 1; j < turns.size(); j += 2) {
    const size_t begin = common_prefix(tokenize(render(messages_of(turns, j, true), true), 1), all);
    size_t end = common_prefix(tokenize(render(messages_of(turns, j + 1, true), false), 1), all);
    RESSA_CHECK(end > begin, "[Processor] ", where, ": the chat template (", template_.where(),
                ") renders assistant turn ", j, " as no tokens of its own");
    spans.emplace_back(begin, end);
  }
  auto is_eos = [&](int64_t id) { return std::find(eos_ids_.begin(), eos_ids_.end(), id) != eos_ids_.end(); };
  size_t copied = 0;
  for (size_t k = 0; k < spans.size(); ++k) {
    auto [begin, end] = spans[k];
    out.ids.insert(out.ids.end(), all.begin() + copied, all.begin() + begin);
    out.target.insert(out.target.end(), begin - copied, 0);
    bool ended = false;  // an end-of-sequence token closes the turn (ChatML's <|im_end|>, ressa's </s>)
    for (size_t t = end - std::min<size_t>(end - begin, 2); t < end; ++t) ended = ended || is_eos(all[t]);
    if (!ended && end < all.size() && is_eos(all[end])) ++end, ended = true;
    out.ids.insert(out.ids.end(), all.begin() + begin, all.begin() + end);
    out.target.insert(out.target.end(), end - begin, 1);
    size_t added = end - begin;
    if (!ended && !eos_ids_.empty()) {
      out.ids.push_back(eos_ids_.front());
      out.target.push_back(1);
      ++added;
    }
    if (k == 0) out.first_answer_tokens = static_cast<int64_t>(added);
    copied = end;
  }
  out.ids.insert(out.ids.end(), all.begin() + copied, all.end());
  out.target.insert(out.target.end(), all.size() - copied, 0);
  return out;
}

Image Processor::model_image(const Image& img) const {
  if (image_) return image_->resize_and_crop(img);
  const int S = config_.vision.image_size;  // ressa's own models: squash to S x S (bilinear)
  return img.width == S && img.height == S ? img : resize_bilinear(img, S, S);
}

PixelNorm Processor::pixel_norm() const {
  if (image_) return image_->pixel_norm();
  PixelNorm n;  // ressa's own models: v / 255, then config.json's image_mean / image_std
  for (int c = 0; c < 3; ++c) n.mean[c] = config_.image_mean[c], n.std[c] = config_.image_std[c];
  return n;
}

PixelValues Processor::pixels(const Image& img) const { return pixel_norm().to_pixels(model_image(img)); }

}  // namespace ressa::data
