// ChatTemplate: turns Hugging Face-style chat messages into the prompt text a model was trained
// on, by rendering the model's chat template (io/jinja.h) the way transformers'
// apply_chat_template does. Torch-free.
//
// Messages are a JSON list, each {"role": "user"|"assistant"|"system", "content": ...}, where
// content is either a string or a list of parts, as llava-hf processors expect:
//   [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]}]
// Which form works depends on the template: the llava-hf templates read the list form only
// (they refuse a string content with an error rather than drop it); ressa's own template and
// from_format() take both.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

#include "ressa/io/jinja.h"

namespace ressa::io {

class ChatTemplate {
 public:
  // Finds a model directory's template the way transformers does: chat_template.jinja, else
  // chat_template.json ({"chat_template": "..."}), else the "chat_template" of
  // tokenizer_config.json (a string, or a list of {"name", "template"} of which "default" is
  // used). Special tokens in tokenizer_config.json (bos_token, eos_token, unk_token, pad_token;
  // strings or {"content": ...}) become template variables. Throws std::runtime_error naming the
  // directory when there is no template, or the file when one is malformed.
  static ChatTemplate load_dir(const std::string& model_dir, const jinja::Limits& limits = {});

  // A template from its Jinja text; `where` names it in error messages.
  static ChatTemplate from_string(const std::string& source, const std::string& where,
                                  const jinja::Limits& limits = {});

  // A user override (the CLI's --prompt-format TEXT) for one user message. TEXT is copied
  // literally except for:
  //   {image}     one image token (the variable image_token, default "<image>") per image part
  //   {question}  the message's text: its string content, or its text parts joined with " "
  //   {bos}       the variable bos_token (empty when the model defines none)
  //   {{ and }}   literal braces
  //   \n \t \\    newline, tab, backslash (so a shell argument can hold them)
  // Any other {name} or backslash escape is an error. Rendering refuses conversations other than
  // one user message, and a message with images when TEXT has no {image}.
  // Example: "USER: {image}\n{question} ASSISTANT:" renders the llava-1.5 prompt.
  // add_generation_prompt has no effect: TEXT already says what follows the question.
  static ChatTemplate from_format(const std::string& format);

  // ressa's own models' prompt: "<s> <image> What color is the circle ?" (BOS, the image token,
  // then the question, space-separated, matching the word-level tokenizer's layout in
  // train/vqa_data.cpp). An assistant turn appends " <answer> </s>". Take the text with
  // ressa_default_source() to write it into a model directory as chat_template.jinja.
  static ChatTemplate ressa_default();
  static const std::string& ressa_default_source();

  // Renders `messages` (a JSON list) with add_generation_prompt and the variables in `extra`
  // (a JSON object, e.g. {"bos_token": "<s>"}; these override the special tokens loaded from
  // tokenizer_config.json). Throws std::runtime_error "[ChatTemplate] <source>:<line>:<col>: ..."
  // on a template error or the template's raise_exception().
  std::string render(const nlohmann::json& messages, bool add_generation_prompt,
                     const nlohmann::json& extra = nlohmann::json::object()) const;

  const std::string& source() const { return source_; }  // the Jinja text
  const std::string& where() const { return where_; }    // the file (or label) it came from
  const nlohmann::json& variables() const { return vars_; }  // special tokens from tokenizer_config.json

 private:
  std::string source_, where_;
  jinja::Template template_;
  nlohmann::json vars_ = nlohmann::json::object();
};

}  // namespace ressa::io
