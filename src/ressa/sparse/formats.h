// Torch-free compressed sparse weight formats for Linear weights W [rows, cols] (fp32):
// BitmaskMatrix (unstructured) and NMMatrix (N:M), each with a lossless dense round trip and a
// compressed-tensors-compatible export to named raw arrays (written to safetensors elsewhere).
// Byte layouts are documented in docs/kernels.md.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace ressa::sparse {

// One raw tensor for a safetensors file: little-endian, row-major, C-contiguous.
struct NamedArray {
  std::string name;            // e.g. "model.layers.0.mlp.up_proj.compressed"
  std::string dtype;           // safetensors dtype name: "F32", "BF16", "F16", "U8", "I32" or "I64"
  std::vector<int64_t> shape;  // dims; product(shape) * dtype_size(dtype) == bytes.size()
  std::vector<uint8_t> bytes;  // raw data
};

// Bytes per element of a safetensors dtype name ("F32" -> 4); throws std::invalid_argument.
size_t dtype_size(const std::string& dtype);

// How a sparse matrix stores its kept values: fp32 (lossless), or 16 bits each (half the value
// bytes; the kernels widen them and still accumulate in fp32), each fp32 value rounded to nearest,
// ties to even: bfloat16 (fp32's range, 8 significant bits), or IEEE half, fp16 (11 significant
// bits, range +-65504, below 2^-14 subnormal): exact for the weights of an fp16 checkpoint.
enum class ValueType { f32, bf16, f16 };
const char* to_string(ValueType t);                 // "f32", "bf16", "f16"
// float32|bfloat16|float16 (Hugging Face's names) or f32|bf16|f16; throws std::invalid_argument.
ValueType parse_value_type(const std::string& s);
// fp32 -> bfloat16 bits, round to nearest even (as torch's .to(torch.bfloat16)); NaN stays NaN.
uint16_t to_bf16(float f);
float from_bf16(uint16_t h);
// fp32 -> IEEE binary16 bits, round to nearest even (as torch's .half()): beyond the largest
// half (65504) rounds to infinity, below 2^-14 to subnormals or zero; NaN stays NaN.
uint16_t to_f16(float f);
float from_f16(uint16_t h);  // exact
// fp32 rounded to the 16-bit type t (bf16 or f16), and a stored 16-bit value back to fp32.
inline uint16_t to_half(ValueType t, float f) { return t == ValueType::f16 ? to_f16(f) : to_bf16(f); }
inline float from_half(ValueType t, uint16_t h) { return t == ValueType::f16 ? from_f16(h) : from_bf16(h); }
// Zero entries after 16-bit values in memory (not in files), so that vector loads may run past
// the last row.
inline constexpr int64_t kHalfPad = 32;

// Unstructured sparsity: a weight is kept iff it is != 0 (so -0.0 reads back as +0.0).
// Layout (compressed-tensors "sparse_bitmask"):
//   values      float, bf16 or f16 [nnz] kept weights in row-major order
//   bitmask     uint8 [rows, ceil(cols/8)]  bit (c % 8) of byte c / 8 = weight c kept
//               (LSB first, numpy packbits bitorder="little"); padding bits are zero
//   row_offsets int64 [rows + 1]        row r's values are values[row_offsets[r], row_offsets[r+1])
class BitmaskMatrix {
 public:
  BitmaskMatrix() = default;
  // w is (rows, cols) row-major; rows, cols >= 1. Kept = != 0 in w (also for 16-bit values, so a
  // tiny value that rounds to a 16-bit zero stays a kept position).
  static BitmaskMatrix from_dense(const float* w, int64_t rows, int64_t cols,
                                  ValueType values = ValueType::f32);
  // out is (rows, cols) row-major; pruned entries become +0.0 (16-bit values widened exactly).
  void to_dense(float* out) const;

  // Tensors "<prefix>.shape" I64 [2], "<prefix>.compressed" F32, BF16 or F16 [nnz], "<prefix>.bitmask"
  // U8 [rows, ceil(cols/8)], "<prefix>.row_offsets" I64 [rows] (row starts, as compressed-tensors
  // writes them). A trailing ".weight" on prefix is dropped, as compressed-tensors does.
  std::vector<NamedArray> to_named_arrays(const std::string& prefix) const;
  // Reads the four tensors above out of arrays (other names are ignored); checks every dtype,
  // shape and size, that padding bits are zero and that row_offsets match the bitmask
  // ([rows] starts or [rows+1] offsets accepted); throws std::runtime_error on inconsistency.
  static BitmaskMatrix from_named_arrays(const std::vector<NamedArray>& arrays,
                                         const std::string& prefix);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int64_t nnz() const { return row_offsets_.empty() ? 0 : row_offsets_.back(); }
  int64_t mask_stride() const { return (cols_ + 7) / 8; }  // bytes per bitmask row
  double density() const { return rows_ > 0 && cols_ > 0 ? double(nnz()) / double(rows_ * cols_) : 0.0; }
  ValueType value_type() const { return vt_; }
  // fp32 values [nnz] (empty unless value_type() is f32).
  const std::vector<float>& values() const { return values_; }
  // 16-bit values (bf16 or f16 bits, per value_type()): nnz entries, then kHalfPad zeros (empty
  // when value_type() is f32).
  const std::vector<uint16_t>& values16() const { return half_; }
  const std::vector<uint8_t>& bitmask() const { return bitmask_; }
  const std::vector<int64_t>& row_offsets() const { return row_offsets_; }
  // Storage of values + bitmask + row_offsets in bytes.
  size_t bytes() const;
  // No stored value is NaN or infinite.
  bool all_finite() const;

 private:
  int64_t rows_ = 0, cols_ = 0;
  std::vector<float> values_;
  std::vector<uint16_t> half_;
  ValueType vt_ = ValueType::f32;
  std::vector<uint8_t> bitmask_;
  std::vector<int64_t> row_offsets_;
};

// N:M sparsity: in every group of m consecutive weights of a row, n are zero and k = m - n are
// kept. Groups with more than n zeros store the extra zeros explicitly, so every group holds
// exactly k values. Layout:
//   values     float/bf16/f16 [rows, cols / m * k]  kept weights, row-major, ascending column
//   positions  uint8 [rows, pos_stride()]      in-group position of each value, pos_bits() =
//              ceil(log2 m) bits each (2 for m = 4), value j of a row at bits [j*b, j*b+b) of
//              the row's bytes, LSB first; positions ascend within a group; padding bits zero
class NMMatrix {
 public:
  NMMatrix() = default;
  // w is (rows, cols) row-major. Requires 2 <= m <= 256, 0 <= n < m, m | cols and at least n
  // zeros in every group; throws std::invalid_argument naming the first offending group.
  // values = bf16 or f16 rounds the stored values (ValueType).
  static NMMatrix from_dense(const float* w, int64_t rows, int64_t cols, int n, int m,
                             ValueType values = ValueType::f32);
  // out is (rows, cols) row-major.
  void to_dense(float* out) const;

  // Tensors in the compressed-tensors "sparse_24_bitmask" layout, generalised to n:m:
  // "<prefix>.shape" I64 [2, 1], "<prefix>.compressed" F32, BF16 or F16 [rows, cols / m * k],
  // "<prefix>.bitmask" U8 [rows, ceil(cols/8)] (1 = stored, LSB first). The 2-bit positions
  // are an in-memory detail; n and m are not stored (record them in the model config).
  std::vector<NamedArray> to_named_arrays(const std::string& prefix) const;
  // Inverse of to_named_arrays; checks dtypes, shapes, sizes and exactly m - n bits set per
  // group; throws std::runtime_error on inconsistency (std::invalid_argument for bad n, m).
  static NMMatrix from_named_arrays(const std::vector<NamedArray>& arrays,
                                    const std::string& prefix, int n, int m);

  int64_t rows() const { return rows_; }
  int64_t cols() const { return cols_; }
  int n() const { return n_; }
  int m() const { return m_; }
  int kept_per_group() const { return m_ - n_; }
  int pos_bits() const { return pos_bits_; }
  int64_t groups_per_row() const { return m_ ? cols_ / m_ : 0; }
  int64_t values_per_row() const { return groups_per_row() * kept_per_group(); }
  int64_t pos_stride() const { return (values_per_row() * pos_bits_ + 7) / 8; }
  ValueType value_type() const { return vt_; }
  // fp32 values (empty unless value_type() is f32).
  const std::vector<float>& values() const { return values_; }
  // 16-bit values (bf16 or f16 bits, per value_type()): rows * values_per_row() entries, then
  // kHalfPad zeros (empty for f32).
  const std::vector<uint16_t>& values16() const { return half_; }
  const std::vector<uint8_t>& positions() const { return positions_; }
  // In-group position of value j (0-based within the row) of row r.
  int position(int64_t r, int64_t j) const;
  // Storage of values + positions in bytes.
  size_t bytes() const;
  // No stored value is NaN or infinite.
  bool all_finite() const;

 private:
  int64_t rows_ = 0, cols_ = 0;
  int n_ = 0, m_ = 0, pos_bits_ = 0;
  std::vector<float> values_;
  std::vector<uint16_t> half_;
  ValueType vt_ = ValueType::f32;
  std::vector<uint8_t> positions_;
};

}  // namespace ressa::sparse
