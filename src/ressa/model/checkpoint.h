// Model directories: load/save a Llava model in the Hugging Face layout (config.json,
// model.safetensors or shards + index, tokenizer.json), plus ressa's pruning record
// (masks.safetensors with "<linear>.mask" U8 tensors, 1 = kept; prune.json with method and origin).
#pragma once
#include <torch/torch.h>

#include <map>
#include <optional>
#include <string>

#include "ressa/io/safetensors.h"
#include "ressa/model/llava.h"

namespace ressa::model {

// Converts a safetensors tensor to a torch tensor (floating dtypes -> float32; U8/BOOL -> uint8;
// integer dtypes kept). Always a copy.
torch::Tensor to_torch(const io::TensorInfo& info, const uint8_t* data);
// Keys a checkpoint may hold that are not parameters and are ignored (HF buffers).
bool is_ignorable_key(const std::string& key);

struct LoadedModel {
  Llava model{nullptr};
  std::string dir;
  bool has_masks = false;
};

// Loads <dir>: validates config.json, every expected tensor present with the right shape and a
// float dtype, no unexpected tensors; loads masks.safetensors if present (shapes checked; the
// weights must be zero wherever the mask is 0). Errors name the file and the tensor.
LoadedModel load_model(const std::string& dir, const torch::Device& device);

// Writes config.json, preprocessor_config.json, model.safetensors (F32, every parameter except
// adapters) and, when any Linear has a mask, masks.safetensors. Files are written atomically.
// `metadata` goes into the safetensors __metadata__.
void save_model(const std::string& dir, Llava& model, const std::map<std::string, std::string>& metadata = {});

// Names of the model's checkpoint tensors in canonical order (parameters, no adapters).
std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors(Llava& model);

// SHA-256-free content hash (FNV-1a 64 over the model.safetensors bytes, hex) used to tie a
// pruned model to the dense model it came from.
std::string model_fingerprint(const std::string& dir);

}  // namespace ressa::model
