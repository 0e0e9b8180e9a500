// Copying a model directory's side files (tokenizer, chat template, processor, generation
// settings) from the model a command read to the one it writes.
#include "ressa/io/model_files.h"

#include <filesystem>
#include <system_error>

#include "ressa/core/error.h"

namespace ressa::io {
namespace fs = std::filesystem;

const std::vector<std::string>& model_side_files() {
  static const std::vector<std::string> files = {
      "tokenizer.json",          "tokenizer_config.json",    "special_tokens_map.json", "added_tokens.json",
      "chat_template.json",      "chat_template.jinja",      "preprocessor_config.json", "processor_config.json",
      "generation_config.json"};
  return files;
}

void copy_model_files(const std::string& src_dir, const std::string& dst_dir) {
  RESSA_CHECK(fs::exists(fs::path(src_dir) / "tokenizer.json"), "[copy_model_files] ",
              (fs::path(src_dir) / "tokenizer.json").string(), ": not found (a model directory has tokenizer.json)");
  for (const std::string& name : model_side_files()) {
    const fs::path from = fs::path(src_dir) / name;
    if (!fs::exists(from)) continue;
    std::error_code ec;
    fs::copy_file(from, fs::path(dst_dir) / name, fs::copy_options::overwrite_existing, ec);
    RESSA_CHECK(!ec, "[copy_model_files] ", from.string(), ": cannot copy to ", dst_dir, ": ", ec.message());
  }
}

}  // namespace ressa::io
