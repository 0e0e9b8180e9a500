// Tests for src/ressa/sparse/formats: lossless dense round trips, exact byte layouts, N:M
// invariants, compressed-tensors named arrays, and errors for bad inputs and corrupt arrays.
#include "ressa/sparse/formats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>

using namespace ressa::sparse;

namespace {

// (fp32 bits, 16-bit bits) pairs of tests/fixtures/<name> (written by tests/reference/*_reference.py
// with python3-torch); empty, with a test failure, when the file is missing.
std::vector<std::pair<uint32_t, uint32_t>> rounding_fixture(const std::string& name) {
  std::vector<std::pair<uint32_t, uint32_t>> pairs;
  std::ifstream in(std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/" + name);
  EXPECT_TRUE(in) << "missing tests/fixtures/" << name;
  for (uint32_t f32 = 0, h = 0; in >> std::hex >> f32 >> h;) pairs.emplace_back(f32, h);
  return pairs;
}

// The float with these bits, and the bits of a float.
float from_bits(uint32_t bits) {
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
uint32_t bits_of(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  return bits;
}

// x rounded to the 16-bit value type t and widened back.
float round_half(ValueType t, float x) { return from_half(t, to_half(t, x)); }

// (rows, cols) with each weight kept with probability density; row 0 all zero and the last
// row fully dense when rows >= 3, so those edge cases are always present.
std::vector<float> random_sparse(int64_t rows, int64_t cols, double density, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> val(-2.0f, 2.0f);
  std::bernoulli_distribution keep(density);
  std::vector<float> w(size_t(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) {
      const bool k = rows >= 3 && r == 0 ? false : rows >= 3 && r == rows - 1 ? true : keep(rng);
      float v = val(rng);
      if (v == 0.0f) v = 1.0f;
      w[size_t(r * cols + c)] = k ? v : 0.0f;
    }
  return w;
}

// (rows, cols) with exactly n zeros per group of m, plus some groups with extra zeros.
std::vector<float> random_nm(int64_t rows, int64_t cols, int n, int m, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> val(0.5f, 2.0f);
  std::vector<float> w(size_t(rows * cols));
  std::vector<int> perm(static_cast<size_t>(m));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t g = 0; g < cols / m; ++g) {
      for (int i = 0; i < m; ++i) perm[size_t(i)] = i;
      std::shuffle(perm.begin(), perm.end(), rng);
      const int zeros = n + (rng() % 5 == 0 ? int(rng() % (m - n + 1)) : 0);  // extra zeros
      for (int i = 0; i < m; ++i)
        w[size_t(r * cols + g * m + perm[size_t(i)])] = i < zeros ? 0.0f : (rng() & 1 ? 1 : -1) * val(rng);
    }
  return w;
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

NamedArray& named(std::vector<NamedArray>& arrays, const std::string& name) {
  for (auto& a : arrays)
    if (a.name == name) return a;
  throw std::logic_error("no array " + name);
}

template <class F>
void expect_runtime_error(F f, const std::string& needle) {
  try {
    f();
    ADD_FAILURE() << "expected std::runtime_error containing '" << needle << "'";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

}  // namespace

TEST(SparseBitmask, RoundTripIsLossless) {
  const std::pair<int64_t, int64_t> shapes[] = {{1, 1}, {7, 13}, {33, 96}, {5, 8}, {3, 17}, {64, 65}};
  uint32_t seed = 1;
  for (auto [rows, cols] : shapes)
    for (double density : {0.0, 0.1, 0.3, 0.5, 0.9, 1.0}) {
      const auto w = random_sparse(rows, cols, density, seed++);
      const auto b = BitmaskMatrix::from_dense(w.data(), rows, cols);
      int64_t nnz = 0;
      for (float v : w) nnz += v != 0.0f;
      EXPECT_EQ(b.nnz(), nnz);
      EXPECT_EQ(b.row_offsets().size(), size_t(rows + 1));
      EXPECT_EQ(b.row_offsets().back(), nnz);
      EXPECT_EQ(b.bitmask().size(), size_t(rows * ((cols + 7) / 8)));
      EXPECT_EQ(b.bytes(), size_t(nnz) * 4 + b.bitmask().size() + size_t(rows + 1) * 8);
      std::vector<float> back(w.size(), -1.0f);
      b.to_dense(back.data());
      EXPECT_TRUE(bitwise_equal(w, back)) << rows << "x" << cols << " density " << density;
    }
}

TEST(SparseBitmask, ByteLayoutIsLsbFirstWithRowOffsets) {
  // Row 0 keeps columns 0, 3, 8; row 1 is empty; row 2 keeps column 9 (10 columns -> 2 bytes/row).
  std::vector<float> w(30, 0.0f);
  w[0] = 1, w[3] = 2, w[8] = 3, w[29] = 4;
  const auto b = BitmaskMatrix::from_dense(w.data(), 3, 10);
  EXPECT_EQ(b.bitmask(), (std::vector<uint8_t>{0x09, 0x01, 0x00, 0x00, 0x00, 0x02}));
  EXPECT_EQ(b.values(), (std::vector<float>{1, 2, 3, 4}));
  EXPECT_EQ(b.row_offsets(), (std::vector<int64_t>{0, 3, 3, 4}));
}

TEST(SparseBitmask, NegativeZeroIsPruned) {
  const float w[4] = {-0.0f, 1.0f, 0.0f, -2.0f};
  const auto b = BitmaskMatrix::from_dense(w, 1, 4);
  EXPECT_EQ(b.nnz(), 2);
}

TEST(SparseBitmask, RejectsBadShapes) {
  const float w[1] = {1.0f};
  EXPECT_THROW(BitmaskMatrix::from_dense(w, 0, 1), std::invalid_argument);
  EXPECT_THROW(BitmaskMatrix::from_dense(w, 1, -1), std::invalid_argument);
  EXPECT_THROW(BitmaskMatrix::from_dense(nullptr, 1, 1), std::invalid_argument);
}

TEST(SparseBitmask, NamedArraysMirrorCompressedTensors) {
  const auto w = random_sparse(9, 21, 0.4, 7);
  const auto b = BitmaskMatrix::from_dense(w.data(), 9, 21);
  auto arrays = b.to_named_arrays("model.layers.0.mlp.up_proj.weight");
  ASSERT_EQ(arrays.size(), 4u);
  const std::string p = "model.layers.0.mlp.up_proj";
  EXPECT_EQ(named(arrays, p + ".shape").dtype, "I64");
  EXPECT_EQ(named(arrays, p + ".shape").shape, (std::vector<int64_t>{2}));
  EXPECT_EQ(named(arrays, p + ".compressed").shape, (std::vector<int64_t>{b.nnz()}));
  EXPECT_EQ(named(arrays, p + ".bitmask").dtype, "U8");
  EXPECT_EQ(named(arrays, p + ".bitmask").shape, (std::vector<int64_t>{9, 3}));
  EXPECT_EQ(named(arrays, p + ".row_offsets").shape, (std::vector<int64_t>{9}));
  for (const auto& a : arrays) {
    int64_t numel = 1;
    for (int64_t d : a.shape) numel *= d;
    EXPECT_EQ(a.bytes.size(), size_t(numel) * dtype_size(a.dtype)) << a.name;
  }
  arrays.push_back({"unrelated.weight", "F32", {1}, std::vector<uint8_t>(4)});
  const auto back = BitmaskMatrix::from_named_arrays(arrays, p);
  std::vector<float> dense(w.size());
  back.to_dense(dense.data());
  EXPECT_TRUE(bitwise_equal(w, dense));
  EXPECT_EQ(back.row_offsets(), b.row_offsets());

  // [rows + 1] offsets (this library's in-memory form) are accepted too.
  auto& offs = named(arrays, p + ".row_offsets");
  offs.shape = {10};
  offs.bytes.resize(80);
  std::memcpy(offs.bytes.data(), b.row_offsets().data(), 80);
  EXPECT_EQ(BitmaskMatrix::from_named_arrays(arrays, p).nnz(), b.nnz());
}

// Rounding matches torch's .to(torch.bfloat16) (fixture written by tests/reference/bf16_reference.py:
// ties to even, overflow to inf, subnormals, signed zeros, infinities).
TEST(SparseBitmaskBf16, RoundingMatchesTorch) {
  const auto pairs = rounding_fixture("bf16_rounding.txt");
  for (auto [f32, bf] : pairs) {
    EXPECT_EQ(to_bf16(from_bits(f32)), bf) << std::hex << "fp32 bits " << f32;
    EXPECT_EQ(bits_of(from_bf16(uint16_t(bf))), bf << 16);
  }
  EXPECT_GT(pairs.size(), 200u);
  EXPECT_TRUE(std::isnan(from_bf16(to_bf16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(from_bf16(to_bf16(-std::nanf("")))));
}

// fp32 -> f16 matches torch's .half() (fixture written by tests/reference/f16_reference.py: ties
// to even, the overflow tie at 65520, subnormal ties, fp32 subnormals, infinities).
TEST(SparseF16, RoundingMatchesTorch) {
  const auto pairs = rounding_fixture("f16_rounding.txt");
  for (auto [f32, h] : pairs) EXPECT_EQ(to_f16(from_bits(f32)), h) << std::hex << "fp32 bits " << f32;
  EXPECT_GT(pairs.size(), 400u);
  for (float nan : {std::nanf(""), -std::nanf("")}) {
    EXPECT_TRUE(std::isnan(from_f16(to_f16(nan))));
    EXPECT_EQ(to_f16(nan) & 0x8000, std::signbit(nan) ? 0x8000 : 0);
  }
}

// f16 -> fp32 for all 65,536 bit patterns against the binary16 definition in float64
// (sign, 5-bit exponent biased by 15, 10-bit fraction; exponent 0: subnormal), and back.
TEST(SparseF16, WideningIsExactForEveryValue) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const int e = int(h >> 10) & 31, m = int(h & 1023);
    const double sign = h & 0x8000 ? -1.0 : 1.0;
    const float f = from_f16(uint16_t(h));
    if (e == 31) {
      if (m) EXPECT_TRUE(std::isnan(f)) << h;
      else EXPECT_EQ(double(f), sign * HUGE_VAL) << h;
      continue;
    }
    const double want = sign * (e == 0 ? std::ldexp(double(m), -24) : std::ldexp(1.0 + m / 1024.0, e - 15));
    ASSERT_EQ(double(f), want) << h;
    ASSERT_EQ(std::signbit(f), bool(h & 0x8000)) << h;
    ASSERT_EQ(to_f16(f), h) << h;  // every half is an fp32, so it rounds to itself
  }
}

// 16-bit values (bf16, f16): the same bitmask and offsets as fp32, values rounded (so to_dense is
// the rounded weights, and a second round trip is exact), half the value bytes.
TEST(SparseBitmaskBf16, RoundTripRoundsValuesOnly) {
  uint32_t seed = 40;
  for (ValueType vt : {ValueType::bf16, ValueType::f16})
  for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 1}, {7, 13}, {33, 96}, {64, 65}})
    for (double density : {0.0, 0.3, 1.0}) {
      const auto w = random_sparse(rows, cols, density, seed++);
      const auto f = BitmaskMatrix::from_dense(w.data(), rows, cols);
      const auto b = BitmaskMatrix::from_dense(w.data(), rows, cols, vt);
      EXPECT_EQ(b.value_type(), vt);
      EXPECT_EQ(b.bitmask(), f.bitmask());
      EXPECT_EQ(b.row_offsets(), f.row_offsets());
      EXPECT_EQ(b.nnz(), f.nnz());
      EXPECT_TRUE(b.values().empty());
      ASSERT_EQ(b.values16().size(), size_t(b.nnz() + kHalfPad));
      EXPECT_EQ(b.bytes(), size_t(b.nnz()) * 2 + b.bitmask().size() + size_t(rows + 1) * 8);
      std::vector<float> back(w.size(), -1.0f);
      b.to_dense(back.data());
      for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(back[i], round_half(vt, w[i])) << i;
      const auto again = BitmaskMatrix::from_dense(back.data(), rows, cols, vt);
      EXPECT_EQ(again.values16(), b.values16());
    }
}

TEST(SparseBitmaskBf16, NamedArraysStore16BitValues) {
  const auto w = random_sparse(9, 21, 0.4, 8);
  for (ValueType vt : {ValueType::bf16, ValueType::f16}) {
    const auto b = BitmaskMatrix::from_dense(w.data(), 9, 21, vt);
    auto arrays = b.to_named_arrays("m.weight");
    const auto& v = named(arrays, "m.compressed");
    EXPECT_EQ(v.dtype, vt == ValueType::f16 ? "F16" : "BF16");
    EXPECT_EQ(v.shape, (std::vector<int64_t>{b.nnz()}));
    EXPECT_EQ(v.bytes.size(), size_t(b.nnz()) * 2);  // the padding is not written
    const auto back = BitmaskMatrix::from_named_arrays(arrays, "m");
    EXPECT_EQ(back.value_type(), vt);
    EXPECT_EQ(back.values16(), b.values16());
    EXPECT_EQ(back.bitmask(), b.bitmask());
    EXPECT_TRUE(back.all_finite());
    // An infinity among the stored values (exponent all ones in that type's layout) is seen.
    auto& vb = named(arrays, "m.compressed").bytes;
    const uint16_t inf = vt == ValueType::f16 ? 0x7C00 : 0x7F80;
    std::memcpy(vb.data(), &inf, 2);
    EXPECT_FALSE(BitmaskMatrix::from_named_arrays(arrays, "m").all_finite());
  }
  EXPECT_EQ(parse_value_type("bf16"), ValueType::bf16);
  EXPECT_EQ(parse_value_type("f16"), ValueType::f16);
  EXPECT_EQ(parse_value_type("f32"), ValueType::f32);
  EXPECT_STREQ(to_string(ValueType::f16), "f16");
  EXPECT_THROW(parse_value_type("fp16"), std::invalid_argument);
  // A bf16 value that is a large finite number is an infinity when read as f16, and the other way.
  EXPECT_TRUE(std::isinf(from_half(ValueType::f16, 0x7C00)));
  EXPECT_FALSE(std::isinf(from_half(ValueType::bf16, 0x7C00)));
}

TEST(SparseBitmask, InconsistentNamedArraysAreRejected) {
  const auto w = random_sparse(6, 11, 0.5, 3);
  const auto b = BitmaskMatrix::from_dense(w.data(), 6, 11);
  const std::string p = "layer";
  const auto good = b.to_named_arrays(p);
  const auto broken = [&](auto mutate) {
    auto a = good;
    mutate(a);
    return a;
  };
  const auto load = [&](const std::vector<NamedArray>& a) { BitmaskMatrix::from_named_arrays(a, p); };
  expect_runtime_error([&] { load(broken([](auto& a) { a.erase(a.begin() + 2); })); }, "missing tensor 'layer.bitmask'");
  expect_runtime_error([&] { load(broken([&](auto& a) { a.push_back(a[1]); })); }, "appears twice");
  expect_runtime_error([&] { load(broken([&](auto& a) { named(a, "layer.compressed").bytes.pop_back(); })); }, "bytes");
  expect_runtime_error([&] { load(broken([&](auto& a) { named(a, "layer.compressed").dtype = "F64"; })); }, "dtype");
  // Same bytes per element as F32, but not a value type.
  expect_runtime_error([&] { load(broken([&](auto& a) { named(a, "layer.compressed").dtype = "I32"; })); },
                       "expected F32, BF16 or F16 values, got I32");
  expect_runtime_error(
      [&] {
        load(broken([&](auto& a) {
          auto& v = named(a, "layer.compressed");
          v.shape[0] -= 1;
          v.bytes.resize(v.bytes.size() - 4);
        }));
      },
      "values but the bitmask keeps");
  expect_runtime_error([&] { load(broken([&](auto& a) { named(a, "layer.bitmask").bytes[1] |= 0x80; })); }, "padding bits");
  expect_runtime_error([&] { load(broken([&](auto& a) { named(a, "layer.bitmask").shape = {12, 1}; })); }, "expected U8 [6, 2]");
  expect_runtime_error([&] { load(broken([&](auto& a) { named(a, "layer.row_offsets").bytes[8] ^= 1; })); }, "says row 1 starts");
  expect_runtime_error(
      [&] {
        load(broken([&](auto& a) {
          int64_t bad[2] = {6, 0};
          std::memcpy(named(a, "layer.shape").bytes.data(), bad, 16);
        }));
      },
      "must be positive");
}

TEST(SparseNM, RoundTripKeepsExactlyMMinusNPerGroup) {
  const std::pair<int, int> patterns[] = {{2, 4}, {4, 8}, {1, 4}, {3, 4}, {0, 4}, {1, 2}, {5, 8}, {7, 16}};
  uint32_t seed = 11;
  for (auto [n, m] : patterns)
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 16}, {7, 48}, {33, 96}, {3, 144}}) {
      const auto w = random_nm(rows, cols, n, m, seed++);
      const auto t = NMMatrix::from_dense(w.data(), rows, cols, n, m);
      const int k = m - n;
      EXPECT_EQ(t.values().size(), size_t(rows * cols / m * k));
      EXPECT_EQ(t.pos_bits(), m == 2 ? 1 : m == 4 ? 2 : m == 8 ? 3 : 4);
      EXPECT_EQ(t.bytes(), t.values().size() * 4 + t.positions().size());
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t j = 0; j < t.values_per_row(); ++j) {
          const int pos = t.position(r, j);
          ASSERT_LT(pos, m);
          if (j % k) { ASSERT_GT(pos, t.position(r, j - 1)) << "positions ascend within a group"; }
        }
      std::vector<float> back(w.size(), -1.0f);
      t.to_dense(back.data());
      EXPECT_TRUE(bitwise_equal(w, back)) << n << ":" << m << " " << rows << "x" << cols;
    }
}

// bf16 values: same positions, values rounded, half the value bytes; BF16 named arrays.
TEST(SparseNMBf16, RoundTripAndNamedArrays) {
  uint32_t seed = 60;
  for (ValueType vt : {ValueType::bf16, ValueType::f16})
  for (auto [n, m] : {std::pair<int, int>{2, 4}, {4, 8}, {1, 2}})
    for (auto [rows, cols] : {std::pair<int64_t, int64_t>{1, 16}, {7, 48}, {3, 144}}) {
      const auto w = random_nm(rows, cols, n, m, seed++);
      const auto f = NMMatrix::from_dense(w.data(), rows, cols, n, m);
      const auto t = NMMatrix::from_dense(w.data(), rows, cols, n, m, vt);
      EXPECT_EQ(t.value_type(), vt);
      EXPECT_EQ(t.positions(), f.positions());
      EXPECT_TRUE(t.values().empty());
      ASSERT_EQ(t.values16().size(), f.values().size() + size_t(kHalfPad));
      for (size_t i = 0; i < f.values().size(); ++i) ASSERT_EQ(t.values16()[i], to_half(vt, f.values()[i]));
      EXPECT_EQ(t.bytes(), f.values().size() * 2 + t.positions().size());
      std::vector<float> back(w.size(), -1.0f);
      t.to_dense(back.data());
      for (size_t i = 0; i < w.size(); ++i) ASSERT_EQ(back[i], round_half(vt, w[i])) << i;
      auto arrays = t.to_named_arrays("l.weight");
      EXPECT_EQ(named(arrays, "l.compressed").dtype, vt == ValueType::f16 ? "F16" : "BF16");
      EXPECT_EQ(named(arrays, "l.compressed").bytes.size(), f.values().size() * 2);
      const auto again = NMMatrix::from_named_arrays(arrays, "l", n, m);
      EXPECT_EQ(again.value_type(), vt);
      EXPECT_EQ(again.values16(), t.values16());
      EXPECT_EQ(again.positions(), t.positions());
    }
}

TEST(SparseNM, PositionsArePacked2BitsLsbFirst) {
  const float w[8] = {0, 1.5f, 0, 2.5f, 3, 0, 0, 4};
  const auto t = NMMatrix::from_dense(w, 1, 8, 2, 4);
  EXPECT_EQ(t.values(), (std::vector<float>{1.5f, 2.5f, 3, 4}));
  // positions 1, 3, 0, 3 -> 0b11'00'11'01
  EXPECT_EQ(t.positions(), (std::vector<uint8_t>{0xCD}));
  // A group with extra zeros stores zeros explicitly, first zero positions first.
  const float z[4] = {0, 0, 0, 5};
  const auto tz = NMMatrix::from_dense(z, 1, 4, 2, 4);
  EXPECT_EQ(tz.values(), (std::vector<float>{0, 5}));
  EXPECT_EQ(tz.position(0, 0), 0);
  EXPECT_EQ(tz.position(0, 1), 3);
}

TEST(SparseNM, RejectsBadPatternsAndGroups) {
  const auto w = random_nm(2, 8, 2, 4, 5);
  EXPECT_THROW(NMMatrix::from_dense(w.data(), 2, 8, 4, 4), std::invalid_argument);   // n >= m
  EXPECT_THROW(NMMatrix::from_dense(w.data(), 2, 8, 5, 4), std::invalid_argument);
  EXPECT_THROW(NMMatrix::from_dense(w.data(), 2, 8, -1, 4), std::invalid_argument);
  EXPECT_THROW(NMMatrix::from_dense(w.data(), 2, 8, 0, 1), std::invalid_argument);   // m < 2
  EXPECT_THROW(NMMatrix::from_dense(w.data(), 4, 4, 1, 3), std::invalid_argument);   // 3 does not divide 4
  EXPECT_THROW(NMMatrix::from_dense(nullptr, 2, 8, 2, 4), std::invalid_argument);
  std::vector<float> dense(16, 1.0f);
  dense[0] = 0.0f;  // first group has one zero, 2:4 needs two
  try {
    NMMatrix::from_dense(dense.data(), 2, 8, 2, 4);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("row 0 columns 0..3 hold 3 nonzeros"), std::string::npos) << e.what();
  }
}

TEST(SparseNM, NamedArraysMirrorSparse24Bitmask) {
  const auto w = random_nm(5, 24, 2, 4, 9);
  const auto t = NMMatrix::from_dense(w.data(), 5, 24, 2, 4);
  const auto arrays = t.to_named_arrays("enc.fc1.weight");
  ASSERT_EQ(arrays.size(), 3u);
  EXPECT_EQ(arrays[0].name, "enc.fc1.shape");
  EXPECT_EQ(arrays[0].shape, (std::vector<int64_t>{2, 1}));
  EXPECT_EQ(arrays[1].name, "enc.fc1.compressed");
  EXPECT_EQ(arrays[1].shape, (std::vector<int64_t>{5, 12}));
  EXPECT_EQ(arrays[2].name, "enc.fc1.bitmask");
  EXPECT_EQ(arrays[2].shape, (std::vector<int64_t>{5, 3}));
  // The bitmask is the same one a BitmaskMatrix of the stored weights would have.
  for (size_t i = 0; i < arrays[2].bytes.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      const size_t c = (i % 3) * 8 + size_t(bit), r = i / 3;
      const bool stored = (arrays[2].bytes[i] >> bit) & 1;
      if (w[r * 24 + c] != 0.0f) { EXPECT_TRUE(stored); }
    }
  const auto back = NMMatrix::from_named_arrays(arrays, "enc.fc1", 2, 4);
  EXPECT_EQ(back.positions(), t.positions());
  std::vector<float> dense(w.size());
  back.to_dense(dense.data());
  EXPECT_TRUE(bitwise_equal(w, dense));

  const auto t48 = NMMatrix::from_dense(random_nm(3, 16, 4, 8, 2).data(), 3, 16, 4, 8);
  EXPECT_EQ(NMMatrix::from_named_arrays(t48.to_named_arrays("x"), "x", 4, 8).positions(), t48.positions());
}

TEST(SparseNM, InconsistentNamedArraysAreRejected) {
  const auto w = random_nm(4, 16, 2, 4, 4);
  const auto good = NMMatrix::from_dense(w.data(), 4, 16, 2, 4).to_named_arrays("p");
  auto a = good;
  a[2].bytes[0] ^= 0x01;  // group 0 of row 0 now marks 1 or 3 weights
  expect_runtime_error([&] { NMMatrix::from_named_arrays(a, "p", 2, 4); }, "stores exactly 2");
  expect_runtime_error([&] { NMMatrix::from_named_arrays(good, "p", 1, 4); }, "expected F32 [4, 12]");
  a = good;
  a[1].dtype = "I32";
  expect_runtime_error([&] { NMMatrix::from_named_arrays(a, "p", 2, 4); }, "expected F32");
  expect_runtime_error([&] { NMMatrix::from_named_arrays(good, "p", 2, 3); }, "not divisible");
  EXPECT_THROW(NMMatrix::from_named_arrays(good, "p", 4, 4), std::invalid_argument);
  a = good;
  a.erase(a.begin());
  expect_runtime_error([&] { NMMatrix::from_named_arrays(a, "p", 2, 4); }, "missing tensor 'p.shape'");
}
