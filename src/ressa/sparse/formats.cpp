// Construction, dense round trip and named-array (compressed-tensors) export/import of the
// sparse weight formats in formats.h.
#include "ressa/sparse/formats.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "ressa/core/error.h"

namespace ressa::sparse {
namespace {

std::string shape_str(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// compressed-tensors names weights "<module>.weight" but its sparse tensors "<module>.<part>".
std::string base_name(const std::string& prefix) {
  const std::string w = ".weight";
  if (prefix.size() >= w.size() && prefix.compare(prefix.size() - w.size(), w.size(), w) == 0)
    return prefix.substr(0, prefix.size() - w.size());
  return prefix;
}

NamedArray make_array(std::string name, std::string dtype, std::vector<int64_t> shape,
                      const void* data, size_t nbytes) {
  NamedArray a{std::move(name), std::move(dtype), std::move(shape), std::vector<uint8_t>(nbytes)};
  if (nbytes) std::memcpy(a.bytes.data(), data, nbytes);
  return a;
}

// The single array called name, with its byte count checked against dtype and shape.
const NamedArray& find_array(const std::vector<NamedArray>& arrays, const std::string& name,
                             const char* fn) {
  const NamedArray* found = nullptr;
  for (const auto& a : arrays) {
    if (a.name != name) continue;
    if (found) fail("[", fn, "] tensor '", name, "' appears twice");
    found = &a;
  }
  if (!found) fail("[", fn, "] missing tensor '", name, "'");
  int64_t numel = 1;
  for (int64_t d : found->shape) {
    if (d < 0) fail("[", fn, "] tensor '", name, "' has negative dim in shape ", shape_str(found->shape));
    numel *= d;
  }
  size_t esize = 0;
  try {
    esize = dtype_size(found->dtype);
  } catch (const std::invalid_argument&) {
    fail("[", fn, "] tensor '", name, "' has unsupported dtype '", found->dtype, "'");
  }
  if (found->bytes.size() != size_t(numel) * esize)
    fail("[", fn, "] tensor '", name, "' ", found->dtype, " ", shape_str(found->shape), " needs ",
         size_t(numel) * esize, " bytes, got ", found->bytes.size());
  return *found;
}

void expect(const NamedArray& a, const char* dtype, const std::vector<int64_t>& shape,
            const char* fn) {
  if (a.dtype != dtype || a.shape != shape)
    fail("[", fn, "] tensor '", a.name, "': expected ", dtype, " ", shape_str(shape), ", got ",
         a.dtype, " ", shape_str(a.shape));
}

// (rows, cols) from a "<prefix>.shape" tensor holding two I64 or I32 values.
std::pair<int64_t, int64_t> read_shape(const NamedArray& a, const char* fn) {
  int64_t v[2] = {0, 0};
  if (a.dtype == "I64" && a.bytes.size() == 16) {
    std::memcpy(v, a.bytes.data(), 16);
  } else if (a.dtype == "I32" && a.bytes.size() == 8) {
    int32_t v32[2];
    std::memcpy(v32, a.bytes.data(), 8);
    v[0] = v32[0], v[1] = v32[1];
  } else {
    fail("[", fn, "] tensor '", a.name, "' must hold 2 I64 or I32 values (rows, cols), got ",
         a.dtype, " ", shape_str(a.shape));
  }
  if (v[0] < 1 || v[1] < 1)
    fail("[", fn, "] tensor '", a.name, "' holds dense shape [", v[0], ", ", v[1],
         "]; both dims must be positive");
  return {v[0], v[1]};
}

// Fails if a bitmask row [ceil(cols/8)] has bits set past column cols - 1.
void check_padding(const uint8_t* row, int64_t cols, int64_t r, const char* fn) {
  if (cols % 8 && (row[cols / 8] >> (cols % 8)))
    fail("[", fn, "] bitmask row ", r, " has padding bits set past column ", cols - 1);
}

// Value storage shared by both formats: fp32 values in f32, or 16-bit ones (bf16 or f16, per the
// matrix's ValueType) in half followed by kHalfPad zeros (f32 then empty).

// Keeps f32 as it is, or rounds it into half and releases it.
void store_values(ValueType t, std::vector<float>& f32, std::vector<uint16_t>& half) {
  if (t == ValueType::f32) return;
  half.assign(f32.size() + size_t(kHalfPad), 0);
  for (size_t i = 0; i < f32.size(); ++i) half[i] = to_half(t, f32[i]);
  f32 = {};
}

// Whether every stored value is finite (16-bit: an exponent of all ones is Inf or NaN).
bool values_finite(ValueType t, const std::vector<float>& f32, const std::vector<uint16_t>& half) {
  for (float v : f32)
    if (!std::isfinite(v)) return false;
  const uint16_t exp = t == ValueType::f16 ? 0x7C00u : 0x7F80u;
  for (uint16_t h : half)
    if ((h & exp) == exp) return false;
  return true;
}

const char* dtype_name(ValueType t) { return t == ValueType::f16 ? "F16" : t == ValueType::bf16 ? "BF16" : "F32"; }

// The value type a ".compressed" tensor's dtype stores; fails for other dtypes.
ValueType value_type_of(const NamedArray& a, const char* fn) {
  if (a.dtype == "F32") return ValueType::f32;
  if (a.dtype == "BF16") return ValueType::bf16;
  if (a.dtype == "F16") return ValueType::f16;
  fail("[", fn, "] tensor '", a.name, "': expected F32, BF16 or F16 values, got ", a.dtype, " ", shape_str(a.shape));
}

// The ".compressed" tensor of shape holding the stored values (F32, or BF16/F16 without the padding).
NamedArray values_array(const std::string& name, const std::vector<int64_t>& shape, ValueType t,
                        const std::vector<float>& f32, const std::vector<uint16_t>& half) {
  size_t numel = 1;
  for (int64_t d : shape) numel *= size_t(d);
  return t == ValueType::f32 ? make_array(name, "F32", shape, f32.data(), numel * 4)
                             : make_array(name, dtype_name(t), shape, half.data(), numel * 2);
}

// Copies a checked F32, BF16 or F16 ".compressed" tensor into the storage above.
void read_values(const NamedArray& a, ValueType t, std::vector<float>& f32, std::vector<uint16_t>& half) {
  if (t != ValueType::f32) {
    half.assign(a.bytes.size() / 2 + size_t(kHalfPad), 0);
    std::memcpy(half.data(), a.bytes.data(), a.bytes.size());
  } else {
    f32.resize(a.bytes.size() / 4);
    std::memcpy(f32.data(), a.bytes.data(), a.bytes.size());
  }
}

int ceil_log2(int m) {
  int b = 0;
  while ((1 << b) < m) ++b;
  return b;
}

void check_nm(int n, int m, const char* fn) {
  if (m < 2 || m > 256 || n < 0 || n >= m)
    fail_arg("[", fn, "] N:M needs 2 <= m <= 256 and 0 <= n < m, got ", n, ":", m);
}

}  // namespace

size_t dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "I64") return 8;
  if (dtype == "BF16" || dtype == "F16") return 2;
  if (dtype == "U8") return 1;
  fail_arg("[dtype_size] unsupported dtype '", dtype, "' (expected F32, BF16, F16, U8, I32 or I64)");
}

const char* to_string(ValueType t) { return t == ValueType::bf16 ? "bf16" : t == ValueType::f16 ? "f16" : "f32"; }

ValueType parse_value_type(const std::string& s) {
  // Hugging Face's torch_dtype names, and ressa's short ones.
  if (s == "float32" || s == "f32") return ValueType::f32;
  if (s == "bfloat16" || s == "bf16") return ValueType::bf16;
  if (s == "float16" || s == "f16") return ValueType::f16;
  fail_arg("unknown value type '", s, "' (expected float32, bfloat16 or float16)");
}

uint16_t to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16) | 0x40u);  // NaN: keep it quiet
  u += 0x7FFFu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}

float from_bf16(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t to_f16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint16_t sign = uint16_t((x >> 16) & 0x8000u);
  const uint32_t a = x & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return uint16_t(sign | 0x7E00u | ((a >> 13) & 0x3FFu));  // NaN: quiet, payload kept
  if (a >= 0x477FF000u) return uint16_t(sign | 0x7C00u);  // >= 65520 (half-way past 65504), or Inf
  if (a < 0x38800000u) {  // below 2^-14: a multiple of 2^-24 (subnormal half) or zero
    if (a <= 0x33000000u) return sign;  // <= 2^-25: rounds to zero (2^-25 itself is a tie, to even 0)
    const uint32_t mant = (a & 0x7FFFFFu) | 0x800000u;
    const int shift = 126 - int(a >> 23);  // value = mant * 2^(e - 150); in units of 2^-24: mant >> shift
    uint32_t q = mant >> shift;
    const uint32_t rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;  // may carry into the smallest normal: right
    return uint16_t(sign | q);
  }
  uint32_t h = (a >> 13) - (112u << 10);  // rebias the exponent (127 -> 15), keep 10 mantissa bits
  const uint32_t rem = a & 0x1FFFu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
  return uint16_t(sign | h);
}

float from_f16(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1Fu, m = h & 0x3FFu;
  if (e == 0) return std::copysign(std::ldexp(float(m), -24), sign ? -1.0f : 1.0f);  // zero or subnormal
  const uint32_t u = sign | (e == 31 ? 0x7F800000u | (m << 13) : ((e + 112u) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// ---- BitmaskMatrix ------------------------------------------------------------------------

BitmaskMatrix BitmaskMatrix::from_dense(const float* w, int64_t rows, int64_t cols, ValueType values) {
  if (rows < 1 || cols < 1)
    fail_arg("[BitmaskMatrix::from_dense] shape must be positive, got [", rows, ", ", cols, "]");
  if (!w) fail_arg("[BitmaskMatrix::from_dense] w is null for shape [", rows, ", ", cols, "]");
  BitmaskMatrix b;
  b.rows_ = rows, b.cols_ = cols;
  int64_t nnz = 0;
  for (int64_t i = 0; i < rows * cols; ++i) nnz += w[i] != 0.0f;
  b.values_.reserve(size_t(nnz));
  b.bitmask_.assign(size_t(rows * b.mask_stride()), 0);
  b.row_offsets_.assign(size_t(rows + 1), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const float* wr = w + r * cols;
    uint8_t* mr = b.bitmask_.data() + r * b.mask_stride();
    for (int64_t c = 0; c < cols; ++c) {
      if (wr[c] == 0.0f) continue;
      mr[c >> 3] |= uint8_t(1u << (c & 7));
      b.values_.push_back(wr[c]);
    }
    b.row_offsets_[size_t(r + 1)] = int64_t(b.values_.size());
  }
  store_values(values, b.values_, b.half_);
  b.vt_ = values;
  return b;
}

void BitmaskMatrix::to_dense(float* out) const {
  for (int64_t r = 0; r < rows_; ++r) {
    float* o = out + r * cols_;
    const uint8_t* mr = bitmask_.data() + r * mask_stride();
    int64_t j = row_offsets_[size_t(r)];
    for (int64_t c = 0; c < cols_; ++c)
      o[c] = (mr[c >> 3] >> (c & 7)) & 1
                 ? (vt_ != ValueType::f32 ? from_half(vt_, half_[size_t(j++)]) : values_[size_t(j++)])
                 : 0.0f;
  }
}

size_t BitmaskMatrix::bytes() const {
  const size_t value_bytes = vt_ == ValueType::f32 ? 4 : 2;
  return size_t(nnz()) * value_bytes + bitmask_.size() + row_offsets_.size() * sizeof(int64_t);
}

std::vector<NamedArray> BitmaskMatrix::to_named_arrays(const std::string& prefix) const {
  const std::string p = base_name(prefix);
  const int64_t shape[2] = {rows_, cols_};
  std::vector<NamedArray> out;
  out.push_back(make_array(p + ".shape", "I64", {2}, shape, sizeof(shape)));
  out.push_back(values_array(p + ".compressed", {nnz()}, vt_, values_, half_));
  out.push_back(make_array(p + ".bitmask", "U8", {rows_, mask_stride()}, bitmask_.data(),
                           bitmask_.size()));
  out.push_back(make_array(p + ".row_offsets", "I64", {rows_}, row_offsets_.data(),
                           size_t(rows_) * sizeof(int64_t)));
  return out;
}

BitmaskMatrix BitmaskMatrix::from_named_arrays(const std::vector<NamedArray>& arrays,
                                               const std::string& prefix) {
  const char* fn = "BitmaskMatrix::from_named_arrays";
  const std::string p = base_name(prefix);
  const auto [rows, cols] = read_shape(find_array(arrays, p + ".shape", fn), fn);
  const NamedArray& values = find_array(arrays, p + ".compressed", fn);
  const NamedArray& mask = find_array(arrays, p + ".bitmask", fn);
  const NamedArray& offs = find_array(arrays, p + ".row_offsets", fn);
  BitmaskMatrix b;
  b.rows_ = rows, b.cols_ = cols;
  expect(mask, "U8", {rows, b.mask_stride()}, fn);
  b.vt_ = value_type_of(values, fn);
  if (values.shape.size() != 1)
    fail("[", fn, "] tensor '", values.name, "': expected [nnz] values, got ", values.dtype, " ",
         shape_str(values.shape));
  const bool with_end = offs.shape == std::vector<int64_t>{rows + 1};
  if (!with_end) expect(offs, "I64", {rows}, fn);
  if (offs.dtype != "I64")
    fail("[", fn, "] tensor '", offs.name, "': expected I64, got ", offs.dtype);

  b.bitmask_ = mask.bytes;
  b.row_offsets_.assign(size_t(rows + 1), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* mr = b.bitmask_.data() + r * b.mask_stride();
    check_padding(mr, cols, r, fn);
    int64_t count = 0;
    for (int64_t i = 0; i < b.mask_stride(); ++i) count += __builtin_popcount(mr[i]);
    b.row_offsets_[size_t(r + 1)] = b.row_offsets_[size_t(r)] + count;
  }
  std::vector<int64_t> given(size_t(offs.shape[0]));
  std::memcpy(given.data(), offs.bytes.data(), offs.bytes.size());
  for (size_t r = 0; r < given.size(); ++r)
    if (given[r] != b.row_offsets_[r])
      fail("[", fn, "] tensor '", offs.name, "' says row ", r, " starts at value ", given[r],
           " but the bitmask puts it at ", b.row_offsets_[r]);
  if (values.shape[0] != b.row_offsets_.back())
    fail("[", fn, "] tensor '", values.name, "' has ", values.shape[0],
         " values but the bitmask keeps ", b.row_offsets_.back());
  read_values(values, b.vt_, b.values_, b.half_);
  return b;
}

// ---- NMMatrix -----------------------------------------------------------------------------

int NMMatrix::position(int64_t r, int64_t j) const {
  const uint8_t* row = positions_.data() + r * pos_stride();
  const int64_t bit = j * pos_bits_, byte = bit >> 3;
  unsigned window = row[byte];
  if (byte + 1 < pos_stride()) window |= unsigned(row[byte + 1]) << 8;
  return int((window >> (bit & 7)) & ((1u << pos_bits_) - 1));
}

NMMatrix NMMatrix::from_dense(const float* w, int64_t rows, int64_t cols, int n, int m, ValueType values) {
  const char* fn = "NMMatrix::from_dense";
  check_nm(n, m, fn);
  if (rows < 1 || cols < 1 || cols % m)
    fail_arg("[", fn, "] shape [", rows, ", ", cols, "] must be positive with cols divisible by m = ", m);
  if (!w) fail_arg("[", fn, "] w is null for shape [", rows, ", ", cols, "]");
  NMMatrix t;
  t.rows_ = rows, t.cols_ = cols, t.n_ = n, t.m_ = m, t.pos_bits_ = ceil_log2(m);
  const int k = m - n;
  t.values_.resize(size_t(rows * t.values_per_row()));
  t.positions_.assign(size_t(rows * t.pos_stride()), 0);
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* prow = t.positions_.data() + r * t.pos_stride();
    float* v = t.values_.data() + r * t.values_per_row();
    int64_t j = 0;  // value index within the row
    for (int64_t g = 0; g < t.groups_per_row(); ++g) {
      const float* wg = w + r * cols + g * m;
      int nonzero = 0;
      for (int i = 0; i < m; ++i) nonzero += wg[i] != 0.0f;
      if (nonzero > k)
        fail_arg("[", fn, "] row ", r, " columns ", g * m, "..", g * m + m - 1, " hold ", nonzero,
                 " nonzeros but ", n, ":", m, " allows at most ", k);
      int fill = k - nonzero;  // zeros stored explicitly, taken first-come in the group
      for (int i = 0; i < m; ++i) {
        if (wg[i] == 0.0f) {
          if (fill == 0) continue;
          --fill;
        }
        const int64_t bit = j * t.pos_bits_;
        for (int q = 0; q < t.pos_bits_; ++q)
          if ((i >> q) & 1) prow[(bit + q) >> 3] |= uint8_t(1u << ((bit + q) & 7));
        v[j++] = wg[i] == 0.0f ? 0.0f : wg[i];
      }
    }
  }
  store_values(values, t.values_, t.half_);
  t.vt_ = values;
  return t;
}

void NMMatrix::to_dense(float* out) const {
  const int k = kept_per_group();
  std::fill(out, out + rows_ * cols_, 0.0f);
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t j = 0; j < values_per_row(); ++j) {
      const size_t i = size_t(r * values_per_row() + j);
      out[r * cols_ + (j / k) * m_ + position(r, j)] = vt_ != ValueType::f32 ? from_half(vt_, half_[i]) : values_[i];
    }
}

size_t NMMatrix::bytes() const {
  return size_t(rows_ * values_per_row()) * (vt_ == ValueType::f32 ? 4 : 2) + positions_.size();
}

std::vector<NamedArray> NMMatrix::to_named_arrays(const std::string& prefix) const {
  const std::string p = base_name(prefix);
  const int64_t shape[2] = {rows_, cols_};
  const int64_t stride = (cols_ + 7) / 8;
  std::vector<uint8_t> mask(size_t(rows_ * stride), 0);
  const int k = kept_per_group();
  for (int64_t r = 0; r < rows_; ++r)
    for (int64_t j = 0; j < values_per_row(); ++j) {
      const int64_t c = (j / k) * m_ + position(r, j);
      mask[size_t(r * stride + (c >> 3))] |= uint8_t(1u << (c & 7));
    }
  std::vector<NamedArray> out;
  out.push_back(make_array(p + ".shape", "I64", {2, 1}, shape, sizeof(shape)));
  out.push_back(values_array(p + ".compressed", {rows_, values_per_row()}, vt_, values_, half_));
  out.push_back(make_array(p + ".bitmask", "U8", {rows_, stride}, mask.data(), mask.size()));
  return out;
}

NMMatrix NMMatrix::from_named_arrays(const std::vector<NamedArray>& arrays,
                                     const std::string& prefix, int n, int m) {
  const char* fn = "NMMatrix::from_named_arrays";
  check_nm(n, m, fn);
  const std::string p = base_name(prefix);
  const auto [rows, cols] = read_shape(find_array(arrays, p + ".shape", fn), fn);
  if (cols % m) fail("[", fn, "] dense shape [", rows, ", ", cols, "] is not divisible into groups of m = ", m);
  NMMatrix t;
  t.rows_ = rows, t.cols_ = cols, t.n_ = n, t.m_ = m, t.pos_bits_ = ceil_log2(m);
  const int k = m - n;
  const int64_t stride = (cols + 7) / 8;
  const NamedArray& values = find_array(arrays, p + ".compressed", fn);
  const NamedArray& mask = find_array(arrays, p + ".bitmask", fn);
  t.vt_ = value_type_of(values, fn);
  expect(values, dtype_name(t.vt_), {rows, t.values_per_row()}, fn);
  expect(mask, "U8", {rows, stride}, fn);
  read_values(values, t.vt_, t.values_, t.half_);
  t.positions_.assign(size_t(rows * t.pos_stride()), 0);
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* mr = mask.bytes.data() + r * stride;
    check_padding(mr, cols, r, fn);
    uint8_t* prow = t.positions_.data() + r * t.pos_stride();
    int64_t j = 0;
    for (int64_t g = 0; g < t.groups_per_row(); ++g) {
      int count = 0;
      for (int i = 0; i < m; ++i) {
        const int64_t c = g * m + i;
        if (!((mr[c >> 3] >> (c & 7)) & 1)) continue;
        if (++count > k) break;
        const int64_t bit = j++ * t.pos_bits_;
        for (int q = 0; q < t.pos_bits_; ++q)
          if ((i >> q) & 1) prow[(bit + q) >> 3] |= uint8_t(1u << ((bit + q) & 7));
      }
      if (count != k)
        fail("[", fn, "] tensor '", mask.name, "' row ", r, " columns ", g * m, "..", g * m + m - 1,
             " mark ", count > k ? "more than " + std::to_string(k) : std::to_string(count),
             " weights; ", n, ":", m, " stores exactly ", k);
    }
  }
  return t;
}

bool BitmaskMatrix::all_finite() const { return values_finite(vt_, values_, half_); }
bool NMMatrix::all_finite() const { return values_finite(vt_, values_, half_); }

}  // namespace ressa::sparse
