// IDX reader (the MNIST / Fashion-MNIST file format), raw or gzip-compressed. Only the
// unsigned-byte type is supported: images are magic 0x00000803 (count, rows, cols), labels
// 0x00000801 (count); dimensions are big-endian uint32 after the magic, then the data. The
// header, every dimension and the exact data length are checked before anything is copied.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ressa::data {

inline constexpr uint32_t kIdxImagesMagic = 0x00000803;  // ubyte, 3 dimensions
inline constexpr uint32_t kIdxLabelsMagic = 0x00000801;  // ubyte, 1 dimension
// Largest (decompressed) IDX file accepted: guards against gzip bombs and lying headers.
inline constexpr uint64_t kIdxMaxBytes = uint64_t(1) << 30;
// Largest rows or cols accepted.
inline constexpr int kIdxMaxSide = 65535;

struct IdxImages {
  int count = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;  // (count, rows, cols) row-major, as stored in the file
  // Pointer to image i: rows * cols bytes.
  const uint8_t* image(int i) const { return pixels.data() + size_t(i) * rows * cols; }
};

// An images file and its labels file, with matching counts.
struct IdxDataset {
  IdxImages images;
  std::vector<uint8_t> labels;  // (count,)
};

// Reads an images / labels file. Gzip is detected from the content (0x1f 0x8b), not the
// name. Throws std::runtime_error "[read_idx_images] <path>: <what>" for a missing file,
// corrupt or truncated gzip, wrong magic, zero or oversized dimensions, or a data length
// different from what the header says (short or with trailing bytes).
IdxImages read_idx_images(const std::string& path);
std::vector<uint8_t> read_idx_labels(const std::string& path);

// Reads both files and checks that their counts match.
IdxDataset read_idx_dataset(const std::string& images_path, const std::string& labels_path);

// Parse-from-memory variants (raw or gzip bytes) for tests and fuzzing; `name` is used in
// messages in place of a path.
IdxImages parse_idx_images(std::string_view bytes, const std::string& name);
std::vector<uint8_t> parse_idx_labels(std::string_view bytes, const std::string& name);

// Decompresses a gzip stream (one or more members) to at most `max_bytes` bytes; throws
// std::runtime_error "[gunzip] <name>: <what>" for corrupt, truncated or oversized data.
std::string gunzip(std::string_view bytes, const std::string& name, uint64_t max_bytes);

}  // namespace ressa::data
