// The files of a Hugging Face model directory besides config.json and the weights: tokenizer,
// chat template, image processor and generation settings. Every model ressa writes from another
// (prune, repair, export) carries them over unchanged, so the output loads in transformers with
// the source's prompt format and preprocessing. Torch-free.
#pragma once
#include <string>
#include <vector>

namespace ressa::io {

// The side files a model directory may hold, in the order they are copied.
const std::vector<std::string>& model_side_files();

// Copies each of model_side_files() that exists in src_dir into dst_dir (overwriting). Throws
// std::runtime_error "[copy_model_files] <path>: ..." when src_dir has no tokenizer.json or a
// copy fails.
void copy_model_files(const std::string& src_dir, const std::string& dst_dir);

}  // namespace ressa::io
