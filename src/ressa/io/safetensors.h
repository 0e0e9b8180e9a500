// Torch-free safetensors I/O: a validating mmap reader, an atomic writer, and model-directory
// checkpoints (single model.safetensors or shards + model.safetensors.index.json).
//
// File layout (https://github.com/huggingface/safetensors): u64 little-endian header length N,
// N bytes of UTF-8 JSON header (padded with spaces to a multiple of 8), then the byte buffer.
// Header: {"__metadata__"?: {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}}
// with offsets relative to the buffer start. Tensor bytes are stored little-endian and are
// copied/viewed as raw bytes (this code assumes a little-endian host).
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ressa/io/key_layout.h"

namespace ressa::io {

enum class DType { F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL };

size_t dtype_size(DType dtype);             // bytes per element
const char* to_string(DType dtype);         // "F32", "BF16", "BOOL", ...
DType parse_dtype(const std::string& s);    // throws std::runtime_error on unknown names

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // empty = 0-d scalar (numel 1)
  uint64_t begin = 0, end = 0;  // byte range in the data buffer, end - begin = numel*dtype_size
  int64_t numel() const;
  uint64_t nbytes() const { return end - begin; }
};

// The validated header of a safetensors file: what SafetensorsFile::open checks, without I/O.
struct SafetensorsHeader {
  uint64_t data_start = 0;                      // 8 + header length: where the data buffer begins
  std::vector<TensorInfo> tensors;              // sorted by name
  std::map<std::string, std::string> metadata;  // __metadata__
};

// Parses and validates the first `size` bytes of a safetensors file held in memory: header
// length, JSON schema (no duplicate keys), dtypes, shapes, and that the tensors' byte ranges
// tile the data buffer (size - data_start bytes) exactly. Throws std::runtime_error
// "[SafetensorsFile::open] <where>: <what>". SafetensorsFile::open runs this on the mapping.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size,
                                           const std::string& where);

// Parses the text of a model.safetensors.index.json ({"metadata"?: {...}, "weight_map":
// {tensor: shard file}}) into tensor -> shard file name, checking that every shard name is a
// plain file name (no "/", "\\" or ".."). Throws std::runtime_error "[Checkpoint::open_dir]
// <where>: <what>"; Checkpoint::open_dir runs this on the index file.
std::map<std::string, std::string> parse_safetensors_index(const std::string& text,
                                                           const std::string& where);

// A validated, read-only memory-mapped safetensors file. Movable, not copyable; unmaps in dtor.
// Every check (header, JSON schema, dtypes, shapes, offsets) runs in open(), before any data is
// handed out. The file must not be truncated by someone else while mapped (SIGBUS).
class SafetensorsFile {
 public:
  static SafetensorsFile open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(SafetensorsFile&& other) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&& other) noexcept;
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by name
  const TensorInfo* find(const std::string& name) const;               // nullptr if absent
  const TensorInfo& at(const std::string& name) const;  // throws runtime_error naming file+tensor
  const uint8_t* data(const TensorInfo& info) const;    // pointer into the mapping
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t data_size() const { return file_size_ - data_start_; }  // bytes in the data buffer

 private:
  SafetensorsFile() = default;
  void unmap() noexcept;

  std::string path_;
  void* map_ = nullptr;
  uint64_t file_size_ = 0;
  uint64_t data_start_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A tensor to write; nbytes = numel(shape) * dtype_size(dtype), read from `data`.
struct TensorView {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;  // may be null only when numel is 0
};

// Writes a safetensors file atomically (AtomicFile). Names must be unique, non-empty and not
// "__metadata__" (std::invalid_argument otherwise). Data is laid out in the given order; the
// header lists "__metadata__" (if non-empty) first, then the tensors in that order, compact JSON
// with keys dtype, shape, data_offsets, space-padded to a multiple of 8 like the reference.
// A tensor whose data lies in a registered file mapping has its pages dropped once written
// (release_file_pages), so writing a mapped model does not make it resident.
void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                      const std::map<std::string, std::string>& metadata = {});

// A checkpoint in a model directory: <dir>/model.safetensors, or the shards listed by
// <dir>/model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard}}).
// open_dir validates: shard names stay inside dir (no "/", "\\" or ".."), every weight_map
// tensor is in its shard, every shard tensor is listed in weight_map for that shard (so no
// tensor appears twice), and shards' __metadata__ do not conflict. Having both layouts in
// one directory is an error (ambiguous). Movable, not copyable (owns the mappings).
class Checkpoint {
 public:
  // Tensor names are ressa's module names whatever the file's key layout (io/key_layout.h):
  // a transformers >= 4.52 checkpoint's "model.language_model.x" is found as
  // "language_model.model.x". layout() says which the files use.
  static Checkpoint open_dir(const std::string& dir);
  KeyLayout layout() const { return layout_; }

  const std::string& dir() const { return dir_; }
  std::vector<std::string> names() const;  // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming dir + tensor
  const uint8_t* data(const std::string& name) const;
  std::string file_of(const std::string& name) const;    // path of the shard holding it
  std::map<std::string, std::string> metadata() const { return metadata_; }  // merged __metadata__
  const std::vector<SafetensorsFile>& files() const { return files_; }

 private:
  struct Loc { size_t file; const TensorInfo* info; };  // info points into files_[file].tensors()
  Checkpoint() = default;
  const Loc& locate(const std::string& name, const char* fn) const;
  void use_module_names();  // detects layout_ and renames index_ to module names

  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, Loc> index_;
  std::map<std::string, std::string> metadata_;
  KeyLayout layout_ = KeyLayout::kLegacy;
};

// Writes <dir>/model.safetensors, or, when the total tensor bytes exceed max_shard_bytes (0 =
// never shard), shards model-00001-of-0000K.safetensors (greedy in the given order, each shard
// <= max_shard_bytes unless one tensor alone is larger) plus model.safetensors.index.json
// ({"metadata": {"total_size": bytes}, "weight_map"}), written last. Each file is atomic; the
// other layout's stale file (index or model.safetensors) is removed afterwards. Creates dir.
// `metadata` goes into every file's __metadata__.
void write_checkpoint_dir(const std::string& dir, const std::vector<TensorView>& tensors,
                          const std::map<std::string, std::string>& metadata = {},
                          uint64_t max_shard_bytes = 0);

}  // namespace ressa::io
