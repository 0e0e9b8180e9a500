// Tests for ressa/data/idx: hand-made good and bad IDX files (raw and gzip, compressed here
// with zlib as an independent reference): wrong magic, truncated header and data, trailing
// bytes, bad dimensions, count mismatch, corrupt and truncated gzip, every truncation of a
// good file, random byte flips (must throw, never crash), and the missing-Fashion-MNIST
// message that names the apt-get command.
#include <gtest/gtest.h>
#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "ressa/data/fashion.h"
#include "ressa/data/idx.h"

#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace ressa::data;

namespace {
using ressa::test::TempDir;

void put32(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s.push_back(char(uint8_t(v >> (8 * k))));
}

// count images of rows x cols; pixel value of (i, y, x) = i * 31 + y * 7 + x (mod 256).
std::string images_bytes(uint32_t count, uint32_t rows, uint32_t cols, uint32_t magic = 0x803) {
  std::string s;
  put32(s, magic), put32(s, count), put32(s, rows), put32(s, cols);
  for (uint32_t i = 0; i < count; ++i)
    for (uint32_t y = 0; y < rows; ++y)
      for (uint32_t x = 0; x < cols; ++x) s.push_back(char(uint8_t(i * 31 + y * 7 + x)));
  return s;
}

std::string labels_bytes(const std::vector<uint8_t>& labels) {
  std::string s;
  put32(s, 0x801), put32(s, uint32_t(labels.size()));
  s.append(labels.begin(), labels.end());
  return s;
}

// Reference gzip (zlib's deflate with a gzip wrapper).
std::string gzip(const std::string& in) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, uLong(in.size())) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = uInt(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = uInt(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// Runs f, expects std::runtime_error whose message contains every string in `parts`.
template <typename F>
void expect_error(F f, std::initializer_list<std::string> parts) {
  try {
    f();
    ADD_FAILURE() << "no exception; expected one containing '" << *parts.begin() << "'";
  } catch (const std::runtime_error& e) {
    for (const auto& p : parts) EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
  }
}
}  // namespace

TEST(DataIdx, ParsesRawAndGzipImagesAndLabels) {
  const std::string raw = images_bytes(3, 2, 4);
  for (const std::string& bytes : {raw, gzip(raw), gzip(raw.substr(0, 20)) + gzip(raw.substr(20))}) {
    IdxImages img = parse_idx_images(bytes, "mem");
    ASSERT_EQ(img.count, 3);
    ASSERT_EQ(img.rows, 2);
    ASSERT_EQ(img.cols, 4);
    ASSERT_EQ(img.pixels.size(), 24u);
    EXPECT_EQ(img.image(2)[1 * 4 + 3], uint8_t(2 * 31 + 7 + 3));
    EXPECT_EQ(std::string(img.pixels.begin(), img.pixels.end()), raw.substr(16));
  }
  const std::vector<uint8_t> labels = {9, 0, 0, 3, 255};
  EXPECT_EQ(parse_idx_labels(labels_bytes(labels), "mem"), labels);
  EXPECT_EQ(parse_idx_labels(gzip(labels_bytes(labels)), "mem"), labels);
  // Zero images is a valid (empty) file.
  EXPECT_EQ(parse_idx_images(images_bytes(0, 28, 28), "mem").pixels.size(), 0u);
  EXPECT_TRUE(parse_idx_labels(labels_bytes({}), "mem").empty());
}

TEST(DataIdx, RejectsWrongMagic) {
  expect_error([] { parse_idx_images(labels_bytes({1, 2}), "lab.idx"); },
               {"[parse_idx_images] lab.idx", "bad magic number 0x00000801", "0x00000803"});
  expect_error([] { parse_idx_labels(images_bytes(1, 2, 2), "img.idx"); },
               {"[parse_idx_labels] img.idx", "bad magic number 0x00000803", "0x00000801"});
  // Float data (type 0x0d) and a 2-dimensional header are not unsigned-byte images.
  expect_error([] { parse_idx_images(images_bytes(1, 2, 2, 0x0D03), "f.idx"); }, {"0x00000d03"});
  expect_error([] { parse_idx_images(images_bytes(1, 2, 2, 0x0802), "d.idx"); }, {"0x00000802"});
  expect_error([] { parse_idx_images(std::string("\x12\x34\x56\x78", 4) + std::string(40, '\0'), "x"); },
               {"0x12345678"});
}

TEST(DataIdx, RejectsTruncatedAndTrailingData) {
  const std::string raw = images_bytes(3, 2, 4);
  expect_error([&] { parse_idx_images(raw.substr(0, raw.size() - 1), "t.idx"); },
               {"t.idx", "truncated", "3 images of 2x4", "24 bytes", "23"});
  expect_error([&] { parse_idx_images(raw.substr(0, 10), "t.idx"); }, {"truncated header"});
  expect_error([&] { parse_idx_images(raw.substr(0, 2), "t.idx"); }, {"truncated header"});
  expect_error([&] { parse_idx_images("", "t.idx"); }, {"truncated header"});
  expect_error([&] { parse_idx_images(raw + "xy", "t.idx"); }, {"2 unexpected bytes"});
  const std::string lab = labels_bytes({1, 2, 3});
  expect_error([&] { parse_idx_labels(lab.substr(0, lab.size() - 2), "l.idx"); },
               {"l.idx", "truncated", "3 labels"});
  expect_error([&] { parse_idx_labels(lab + "z", "l.idx"); }, {"1 unexpected bytes"});
  // Every strict prefix of a good file, raw or gzip, is an error (never a crash or success).
  const std::string gz = gzip(raw);
  for (size_t n = 0; n < raw.size(); ++n)
    EXPECT_THROW(parse_idx_images(raw.substr(0, n), "p"), std::runtime_error) << n;
  for (size_t n = 2; n < gz.size(); ++n)
    EXPECT_THROW(parse_idx_images(gz.substr(0, n), "p"), std::runtime_error) << n;
}

TEST(DataIdx, RejectsBadDimensions) {
  expect_error([] { parse_idx_images(images_bytes(2, 0, 4), "z"); }, {"rows = 0"});
  expect_error([] { parse_idx_images(images_bytes(2, 4, 0), "z"); }, {"cols = 0"});
  expect_error([] { parse_idx_images(images_bytes(1, 70000, 1), "z"); }, {"rows = 70000"});
  // A header declaring ~4 GB of pixels is rejected before anything is allocated.
  std::string huge;
  put32(huge, 0x803), put32(huge, 0x7FFFFFFF), put32(huge, 60000), put32(huge, 60000);
  expect_error([&] { parse_idx_images(huge, "h"); }, {"over the limit"});
  std::string neg;
  put32(neg, 0x801), put32(neg, 0x80000000u);
  expect_error([&] { parse_idx_labels(neg, "n"); }, {"label count 2147483648"});
}

TEST(DataIdx, RejectsCorruptGzip) {
  const std::string raw = images_bytes(4, 8, 8);
  std::string gz = gzip(raw);
  std::string bad = gz;
  bad[gz.size() - 6] ^= 0x55;  // CRC-32 of the data
  expect_error([&] { parse_idx_images(bad, "c.gz"); }, {"[parse_idx_images] c.gz", "corrupt gzip"});
  bad = gz;
  bad[3] = char(0xE0);  // reserved header flag bits
  expect_error([&] { parse_idx_images(bad, "c.gz"); }, {"corrupt gzip"});
  expect_error([&] { parse_idx_images(gz.substr(0, gz.size() - 4), "c.gz"); }, {"truncated gzip"});
  expect_error([&] { parse_idx_images(gz + "junk", "c.gz"); }, {"4 bytes of trailing garbage"});
  // Decompressed size limit (checked while inflating, not after).
  expect_error([&] { gunzip(gz, "c.gz", 100); }, {"[gunzip] c.gz", "exceeds the limit of 100"});
  EXPECT_EQ(gunzip(gz, "c.gz", raw.size()), raw);
}

TEST(DataIdx, RandomByteFlipsNeverCrash) {
  const std::string raw = images_bytes(5, 6, 7), gz = gzip(raw);
  std::mt19937_64 rng(1);
  int ok = 0, errors = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    std::string b = trial % 2 ? raw : gz;
    const int flips = 1 + int(rng() % 3);
    for (int k = 0; k < flips; ++k) b[rng() % b.size()] ^= char(1 + rng() % 255);
    try {
      IdxImages img = parse_idx_images(b, "fuzz");
      EXPECT_EQ(img.pixels.size(), size_t(img.count) * img.rows * img.cols);
      ++ok;
    } catch (const std::runtime_error&) {
      ++errors;
    }
  }
  EXPECT_GT(ok, 0);  // flips inside raw pixel data are still valid files
  EXPECT_GT(errors, 0);
}

TEST(DataIdx, ReadsFilesAndChecksCountsMatch) {
  TempDir d;
  write(d.file("img.gz"), gzip(images_bytes(3, 2, 2)));
  write(d.file("img"), images_bytes(3, 2, 2));
  write(d.file("lab3"), labels_bytes({1, 2, 3}));
  write(d.file("lab4.gz"), gzip(labels_bytes({1, 2, 3, 4})));
  EXPECT_EQ(read_idx_images(d.file("img.gz")).pixels, read_idx_images(d.file("img")).pixels);
  IdxDataset ds = read_idx_dataset(d.file("img.gz"), d.file("lab3"));
  EXPECT_EQ(ds.images.count, 3);
  EXPECT_EQ(ds.labels, (std::vector<uint8_t>{1, 2, 3}));
  expect_error([&] { read_idx_dataset(d.file("img"), d.file("lab4.gz")); },
               {"[read_idx_dataset]", d.file("img"), "3 images", d.file("lab4.gz"), "4 labels"});
  expect_error([&] { read_idx_images(d.file("nope.gz")); },
               {"[read_idx_images] " + d.file("nope.gz"), "no such file"});
  expect_error([&] { read_idx_labels(d.path.string()); }, {"is a directory"});
  write(d.file("trunc"), images_bytes(3, 2, 2).substr(0, 20));
  expect_error([&] { read_idx_images(d.file("trunc")); }, {"[read_idx_images] " + d.file("trunc"), "truncated"});
}

TEST(DataIdx, FashionMnistMissingOrInvalid) {
  TempDir d;
  // Missing files: the message names the file and the Debian package.
  expect_error([&] { load_fashion_mnist(d.path.string(), true); },
               {"train-images-idx3-ubyte.gz", "apt-get install dataset-fashion-mnist"});
  expect_error([&] { load_fashion_mnist(d.path.string(), false); },
               {"t10k-images-idx3-ubyte.gz", "apt-get install dataset-fashion-mnist"});
  FashionOptions opt;
  opt.source_dir = d.path.string();
  expect_error([&] { generate_fashion(d.file("out"), opt); }, {"apt-get install dataset-fashion-mnist"});
  EXPECT_FALSE(fs::exists(d.file("out")));  // nothing written before the photos load

  // A tiny stand-in (raw images, gzip labels): 20 photos, two of each class.
  std::vector<uint8_t> labels;
  for (int i = 0; i < 20; ++i) labels.push_back(uint8_t(i % 10));
  write(d.file("t10k-images-idx3-ubyte"), images_bytes(20, 28, 28));
  write(d.file("t10k-labels-idx1-ubyte.gz"), gzip(labels_bytes(labels)));
  FashionPhotos p = load_fashion_mnist(d.path.string(), false);
  EXPECT_EQ(p.images.count, 20);
  EXPECT_EQ(p.by_class[3], (std::vector<int>{3, 13}));
  // Wrong image size, out-of-range label, a class with no photo.
  write(d.file("t10k-images-idx3-ubyte"), images_bytes(20, 28, 27));
  expect_error([&] { load_fashion_mnist(d.path.string(), false); }, {"28x27", "expected 28x28"});
  write(d.file("t10k-images-idx3-ubyte"), images_bytes(20, 28, 28));
  labels[7] = 10;
  write(d.file("t10k-labels-idx1-ubyte.gz"), gzip(labels_bytes(labels)));
  expect_error([&] { load_fashion_mnist(d.path.string(), false); }, {"label 10 at index 7"});
  labels[7] = labels[17] = 6;  // class 7 had photos 7 and 17
  write(d.file("t10k-labels-idx1-ubyte.gz"), gzip(labels_bytes(labels)));
  expect_error([&] { load_fashion_mnist(d.path.string(), false); }, {"no photo of class 7 (sneaker)"});
}
