// Tests for ressa/data/image: exact PNG round trip, JPEG and greyscale decode, resize against
// hand-computed values, and errors for missing, corrupt, truncated and oversized files.
#include <gtest/gtest.h>
#include <stb_image_write.h>  // declarations only; the implementation lives in image.cpp
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "ressa/core/atomic_file.h"
#include "ressa/data/image.h"

#include "error_of.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::data::Image;

namespace {
// A fresh directory per test, removed when the test ends.
using ressa::test::TempDir;

void write_bytes(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::binary).write(s.data(), std::streamsize(s.size()));
}

Image random_image(int w, int h, uint32_t seed) {
  Image img{w, h, std::vector<uint8_t>(size_t(w) * h * 3)};
  std::mt19937 g(seed);
  for (auto& v : img.rgb) v = uint8_t(g() & 0xFF);
  return img;
}

using ressa::test::error_of;
}  // namespace

TEST(DataImage, PngRoundTripIsExact) {
  TempDir d;
  Image img = random_image(37, 23, 1);
  ressa::data::save_png((d / "a.png").string(), img);
  Image back = ressa::data::load_image((d / "a.png").string());
  EXPECT_EQ(back.width, 37);
  EXPECT_EQ(back.height, 23);
  EXPECT_EQ(back.rgb, img.rgb);
  EXPECT_FALSE(fs::exists(d / ("a.png.tmp." + std::to_string(::getpid()))));
}

// The JPEG is a committed fixture (a 16x16 fill of (200, 50, 30) written once by stb_image_write
// at quality 95): writing it at test time runs stb's JPEG encoder, which UBSan flags (left shift
// of a negative value in stbiw__jpg_writeBits) and which ressa never uses.
TEST(DataImage, JpegDecodes) {
  Image img{16, 16, {}};
  for (int i = 0; i < 16 * 16; ++i) img.rgb.insert(img.rgb.end(), {200, 50, 30});
  Image back = ressa::data::load_image(std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/red16_q95.jpg");
  ASSERT_EQ(back.width, 16);
  ASSERT_EQ(back.height, 16);
  ASSERT_EQ(back.rgb.size(), img.rgb.size());
  for (size_t i = 0; i < img.rgb.size(); ++i) EXPECT_NEAR(back.rgb[i], img.rgb[i], 8) << i;
}

TEST(DataImage, GreyPngIsExpandedToRgb) {
  TempDir d;
  const uint8_t grey[6] = {0, 50, 100, 150, 200, 250};
  ASSERT_TRUE(stbi_write_png((d / "g.png").c_str(), 3, 2, 1, grey, 3));
  Image back = ressa::data::load_image((d / "g.png").string());
  ASSERT_EQ(back.rgb.size(), 18u);
  for (int i = 0; i < 6; ++i)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(back.rgb[i * 3 + c], grey[i]);
}

TEST(DataImage, ResizeMatchesHandComputedValues) {
  // 1x2 -> 1x4 with half-pixel centres: sources -0.25(clamped 0), 0.25, 0.75, 1.25(clamped 1).
  Image row{2, 1, {0, 0, 0, 255, 255, 255}};
  Image out = ressa::data::resize_bilinear(row, 4, 1);
  const uint8_t want[4] = {0, 64, 191, 255};
  for (int x = 0; x < 4; ++x) EXPECT_EQ(out.rgb[x * 3], want[x]) << x;
  Image img = random_image(9, 7, 2);
  EXPECT_EQ(ressa::data::resize_bilinear(img, 9, 7).rgb, img.rgb);  // identity
  // 2x downscale by an exact factor averages each 2x2 block (sources fall on block centres).
  Image big = random_image(8, 6, 3), small = ressa::data::resize_bilinear(big, 4, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 4; ++x)
      for (int c = 0; c < 3; ++c) {
        auto at = [&](int yy, int xx) { return double(big.rgb[(yy * 8 + xx) * 3 + c]); };
        double avg = (at(2 * y, 2 * x) + at(2 * y, 2 * x + 1) + at(2 * y + 1, 2 * x) +
                      at(2 * y + 1, 2 * x + 1)) /
                     4;
        EXPECT_NEAR(small.rgb[(y * 4 + x) * 3 + c], avg, 0.51);
      }
  EXPECT_THROW(ressa::data::resize_bilinear(img, 0, 4), std::invalid_argument);
}

TEST(DataImage, Errors) {
  TempDir d;
  const std::string missing = (d / "missing.png").string();
  EXPECT_NE(error_of([&] { ressa::data::load_image(missing); }).find(missing), std::string::npos);

  write_bytes(d / "junk.png", "this is not an image at all");
  std::string e = error_of([&] { ressa::data::load_image((d / "junk.png").string()); });
  EXPECT_NE(e.find("[load_image]"), std::string::npos) << e;
  EXPECT_NE(e.find("junk.png"), std::string::npos) << e;

  ressa::data::save_png((d / "ok.png").string(), random_image(20, 20, 4));
  std::string png = ressa::read_file((d / "ok.png").string());
  write_bytes(d / "cut.png", png.substr(0, png.size() / 2));
  e = error_of([&] { ressa::data::load_image((d / "cut.png").string()); });
  EXPECT_NE(e.find("cut.png"), std::string::npos) << e;

  // Patch the IHDR width (bytes 16..19, big-endian) to 10000: rejected before decoding.
  std::string huge = png;
  huge[16] = 0, huge[17] = 0, huge[18] = char(0x27), huge[19] = char(0x10);
  write_bytes(d / "huge.png", huge);
  e = error_of([&] { ressa::data::load_image((d / "huge.png").string()); });
  EXPECT_NE(e.find("10000x20"), std::string::npos) << e;

  // A progressive JPEG whose second scan selects an AC Huffman table no DHT defined (found by
  // fuzz_image: stb 2.27 decoded it with uninitialised memory); libjpeg-turbo rejects the file
  // with its own message, which load_image passes on with the path.
  const std::string undefined_table =
      std::string(RESSA_SOURCE_DIR) + "/tests/fuzz/regressions/image/jpeg_scan_undefined_huffman_table.jpg";
  e = error_of([&] { ressa::data::load_image(undefined_table); });
  EXPECT_NE(e.find(undefined_table + ": cannot decode JPEG ("), std::string::npos) << e;
  // Not a JPEG after its SOI marker: one error line too.
  write_bytes(d / "soi.jpg", std::string("\xFF\xD8garbage", 9));
  e = error_of([&] { ressa::data::load_image((d / "soi.jpg").string()); });
  EXPECT_NE(e.find("cannot decode JPEG"), std::string::npos) << e;
  // The committed baseline JPEG defines every table it uses and still decodes.
  EXPECT_NO_THROW(ressa::data::load_image(std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/red16_q95.jpg"));

  Image bad{4, 4, std::vector<uint8_t>(10)};
  EXPECT_THROW(ressa::data::save_png((d / "bad.png").string(), bad), std::invalid_argument);
  EXPECT_FALSE(fs::exists(d / "bad.png"));
}
