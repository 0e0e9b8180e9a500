// Model directories: load/save a Llava model in the Hugging Face layout (config.json,
// model.safetensors or shards + index, tokenizer.json), plus ressa's pruning record
// (masks.safetensors with "<linear>.mask" U8 tensors, 1 = kept; prune.json with method and origin),
// and compressed model directories written by `ressa export` (pruned Linear weights stored in the
// compressed-tensors sparse_bitmask / sparse_24_bitmask layouts, recorded in config.json's
// "quantization_config" -> "sparsity_config" and "ressa_sparse"; docs/kernels.md).
#pragma once
#include <torch/torch.h>

#include <map>
#include <memory>
#include <optional>
#include <string>

#include "ressa/io/safetensors.h"
#include "ressa/model/llava.h"
#include "ressa/sparse/formats.h"

namespace ressa::model {

// Converts a safetensors tensor to a torch tensor (floating dtypes -> float32; U8/BOOL -> uint8;
// integer dtypes kept). Always a copy.
torch::Tensor to_torch(const io::TensorInfo& info, const uint8_t* data);
// A read-only view of the checkpoint tensor `name` (module name) in its stored dtype, with no copy;
// it keeps the mapping alive. Undefined when the data is not aligned to its element size. Writing
// to it crashes (the mapping is read-only).
torch::Tensor mapped_tensor(const std::shared_ptr<const io::Checkpoint>& ckpt, const std::string& name);
// Keys a checkpoint may hold that are not parameters and are ignored (HF buffers).
bool is_ignorable_key(const std::string& key);

// How pruned Linear weights are stored by `ressa export`.
enum class SparseFormat { Bitmask, NM };
SparseFormat parse_sparse_format(const std::string& s);  // "bitmask", "nm"; invalid_argument otherwise
std::string to_string(SparseFormat f);

struct LoadedModel {
  Llava model{nullptr};
  std::string dir;
  bool has_masks = false;
  // Compressed checkpoints: "bitmask" or "nm" ("" = dense), the N:M pattern (nm only) and the
  // Linear layers stored compressed. On a CPU device each of them gets a SparseWeight, so
  // inference (no-grad forward) runs through the sparse kernels.
  std::string compression;
  int n = 0, m = 0;
  std::vector<std::string> compressed_layers;
};

// Loads <dir>: validates config.json, every expected tensor present with the right shape and a
// float dtype, no unexpected tensors; loads masks.safetensors if present (shapes checked; the
// weights must be zero wherever the mask is 0). Errors name the file and the tensor.
// A compressed directory (config.json "quantization_config" with a "sparsity_config") holds
// "<linear>.shape/.compressed/.bitmask[/.row_offsets]" instead of "<linear>.weight" for each
// target; they are validated, decompressed into the dense weight (zeros where pruned), the
// stored bitmask becomes the layer's mask, and on CPU the compressed matrix is kept for the
// sparse kernels.
struct LoadOptions {
  // Inference only (ressa eval): on CPU, each compressed layer keeps only its compressed copy;
  // its dense weight and mask are never materialised (LinearImpl::release_dense), so the
  // process holds the compressed bytes instead of dense + mask + compressed. Such a model can
  // only run forward passes through the sparse kernels.
  bool release_dense = false;
  // On CPU, every dense Linear weight stays in the checkpoint's dtype as a read-only view of the
  // mapped file, with no copy (the mapping lives as long as the weights); each layer widens it to
  // fp32 for its product. An fp16 7B model then holds its 13.5 GB of Linear weights once, as file
  // pages, instead of 27 GB of fp32 copies, and only the pages read since the last
  // io::release_file_pages (eval, generate; prune's streamed run replaces pruned weights instead
  // of writing them). The weights must never be changed in place (repair and merge load without
  // it). Other tensors (norms, embeddings, biases) are fp32 copies as without it.
  bool map_weights = false;
  // Every dense Linear weight not mapped is a copy in the checkpoint's dtype (fp16 / bf16 stay
  // 16-bit; each layer widens it to fp32 for its product) instead of an fp32 copy, which may be
  // changed in place (a pruned or updated value is rounded to the stored dtype, as writing the
  // model does anyway): what `ressa prune` holds off CPU. Half the memory of fp32 copies.
  bool stored_dtype = false;
};
LoadedModel load_model(const std::string& dir, const torch::Device& device, const LoadOptions& opts = {});

struct ExportOptions {
  SparseFormat format = SparseFormat::Bitmask;  // storage for the pruned Linear weights
  int n = 2, m = 4;                             // NM only: n zeros in every group of m
  // bf16 / f16 round the stored weights to bfloat16 / IEEE half (half their bytes; the model
  // changes slightly, except that f16 keeps the weights of an fp16 checkpoint exact), f32 keeps
  // them exact.
  sparse::ValueType values = sparse::ValueType::f32;
};

struct ExportReport {
  std::vector<std::string> compressed;  // Linear layers stored compressed
  std::vector<std::string> dense;       // Linear layers stored dense
  uint64_t file_bytes = 0;              // bytes of the written model.safetensors (all shards)
  uint64_t compressed_bytes = 0;        // tensor bytes of the compressed layers
  uint64_t compressed_dense_bytes = 0;  // the same layers stored dense (in the checkpoint's dtype)
  uint64_t dense_tensor_bytes = 0;      // tensor bytes of the whole model stored dense (checkpoint's dtype)
  double global_sparsity = 0;           // zeros / numel over all checkpoint tensors
};

// Writes a compressed copy of the model directory `model_dir` to `out_dir` (atomically, via
// <out_dir>.partial): config.json with the compression record, preprocessor_config.json,
// tokenizer.json, prune.json (when present) and model.safetensors, where every pruned Linear
// (one with a mask; without masks: every tower-block Linear holding zeros) is stored
// compressed and everything else dense F32. NM: throws std::invalid_argument naming the first
// layer and group that is not n:m sparse, before anything is written.
ExportReport export_compressed(const std::string& model_dir, const std::string& out_dir, const ExportOptions& opts);

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
