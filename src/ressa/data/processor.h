// Processor: a model directory's chat template + tokenizer + image processor, as one object the
// way transformers' LlavaProcessor is one: a question and an image become the prompt's token ids
// (each image token expanded to the number of features the vision tower gives) and the pixels.
// `ressa generate` and `ressa tokenize` take their inputs from it. Torch-free.
//
// What it reads from the directory (docs/architecture.md, "Model directory"):
//   tokenizer.json (+ tokenizer_config.json)   io::Tokenizer::load_dir
//   chat template                              io::ChatTemplate::load_dir; without one, a
//                                              WordLevel (ressa-trained) model uses ressa's own
//                                              prompt, any other model is an error
//   preprocessor_config.json                   data::ImageProcessor; without it, ressa's own
//                                              pipeline: bilinear resize to image_size x
//                                              image_size, then config.json's image_mean/std
//   generation_config.json                     eos_token_id (an id or a list) for generation
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ressa/data/conversation.h"
#include "ressa/data/image.h"
#include "ressa/data/image_processor.h"
#include "ressa/io/chat_template.h"
#include "ressa/io/config.h"
#include "ressa/io/tokenizer.h"

namespace ressa::data {

struct PromptIds {
  std::string text;          // the rendered chat template (one image token per image)
  std::vector<int64_t> ids;  // its token ids, each image token repeated image_tokens() times
};

// A whole conversation for teacher-forced training and calibration (docs/data.md,
// "How an example becomes tokens and pixels").
struct EncodedConversation {
  std::vector<int64_t> prompt;  // the first user turn with the generation prompt, as prompt() gives it
  std::vector<int64_t> ids;     // the rendered conversation, image tokens expanded
  std::vector<uint8_t> target;  // per ids[t]: 1 where t is an assistant token the loss covers
  int64_t first_answer_tokens = 0;  // target tokens of the first assistant turn
};

class Processor {
 public:
  // Loads the pieces above from `model_dir` for a model of configuration `config`.
  // `prompt_format`, when not empty, replaces the chat template (io::ChatTemplate::from_format).
  static Processor load_dir(const std::string& model_dir, const io::LlavaConfig& config,
                            const std::string& prompt_format = "");

  // One of ressa's own models held in memory (`ressa train` before its directory exists): ressa's
  // template, its bilinear image pipeline, the tokenizer's eos.
  static Processor for_ressa_model(io::Tokenizer tok, const io::LlavaConfig& config);

  // One user turn: an image (when with_image) then `question`, with the generation prompt;
  // tokenized with the tokenizer's special tokens as LlavaProcessor does.
  PromptIds prompt(const std::string& question, bool with_image) const;
  // The conversation rendered with the chat template and tokenized as one text. An assistant
  // turn's tokens are those the rendering up to the end of that turn shares with the whole,
  // past those the rendering up to its generation prompt shares; when the template does not end
  // the turn with an end-of-sequence token (llava-1.5's does not), eos_ids()[0] is inserted after
  // it and trained on, as LLaVA's own training format (Vicuna v1, "</s>" after each answer) has it.
  // `where` names the conversation in errors.
  EncodedConversation encode(const Conversation& c, const std::string& where) const;

  // The image at the model's input size, before rescale and normalize: the image processor's
  // resize and center crop (ressa's own pipeline: bilinear resize to image_size x image_size).
  Image model_image(const Image& img) const;
  // The rescale and normalize that turn model_image() into pixels.
  PixelNorm pixel_norm() const;
  // Model pixels (3, image_size, image_size) float32 of one image: pixel_norm() of model_image().
  PixelValues pixels(const Image& img) const;
  // Ids that end generation: generation_config.json's eos_token_id, else the tokenizer's eos.
  const std::vector<int64_t>& eos_ids() const { return eos_ids_; }

  const io::Tokenizer& tokenizer() const { return tok_; }
  const io::ChatTemplate& chat_template() const { return template_; }
  bool has_image_processor() const { return image_.has_value(); }

 private:
  Processor(io::Tokenizer tok, io::ChatTemplate tmpl, const io::LlavaConfig& config)
      : tok_(std::move(tok)), template_(std::move(tmpl)), config_(config) {}
  std::string render(const nlohmann::json& messages, bool add_generation_prompt) const;
  // Tokenizes a rendered text with the special tokens and expands its image token, which must
  // occur `images` times.
  std::vector<int64_t> tokenize(const std::string& text, int64_t images) const;
  io::Tokenizer tok_;
  io::ChatTemplate template_;
  io::LlavaConfig config_;
  std::optional<ImageProcessor> image_;  // nullopt: ressa's own bilinear pipeline
  std::vector<int64_t> eos_ids_;
};

// generation_config.json's eos_token_id as a list (an int, a list of ints, or absent/null: {}).
// Throws std::runtime_error naming the file for anything else.
std::vector<int64_t> parse_generation_eos(const std::string& text, const std::string& where);

}  // namespace ressa::data
