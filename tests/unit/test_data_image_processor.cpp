// Tests for ressa/data/image_processor and ressa/data/resample: pixels against the PIL + numpy
// restatement of transformers' CLIPImageProcessor / SiglipImageProcessor
// (tests/reference/image_processor_reference.py, fixtures in tests/fixtures/image_processor/),
// preprocessor_config.json defaults, and errors that name the file and the field.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>

#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "ressa/data/image.h"
#include "ressa/data/image_processor.h"
#include "ressa/data/resample.h"

#include "error_of.h"
#include "temp_dir.h"

namespace fs = std::filesystem;
using nlohmann::json;
using ressa::data::Image;
using ressa::data::ImageProcessor;
using ressa::data::ImageProcessorConfig;
using ressa::data::ImageProcessorType;
using ressa::data::Resample;

namespace {

const fs::path kFixtures = fs::path(RESSA_SOURCE_DIR) / "tests/fixtures/image_processor";

json manifest() {
  static const json m = json::parse(ressa::read_file((kFixtures / "manifest.json").string()));
  return m;
}

ImageProcessorConfig parse(const std::string& text) {
  return ressa::data::parse_image_processor_config(text, "model/preprocessor_config.json");
}

using ressa::test::error_of;

// The message of parsing `text`; it must name the file and `field`.
std::string parse_error(const std::string& text, const std::string& field) {
  const std::string e = error_of([&] { parse(text); });
  EXPECT_NE(e.find("[ImageProcessor] model/preprocessor_config.json: " + field + ":"), std::string::npos)
      << "expected the file and field '" << field << "' in: " << e;
  return e;
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

}  // namespace

// ---- pixels against the reference --------------------------------------------------------------

// ressa's decoders (libjpeg-turbo, stb_image for PNG) give the same RGB bytes as PIL's
// Image.open(...).convert("RGB"), for RGB, grey and RGBA PNGs and RGB and grey JPEGs.
TEST(DataImageProcessor, DecodedPixelsEqualPil) {
  const json m = manifest();
  ASSERT_GE(m["cases"].size(), 20u);
  for (const json& c : m["cases"]) {
    const Image img = ressa::data::load_image((kFixtures / c["input"].get<std::string>()).string());
    EXPECT_EQ(img.width, c["width"].get<int>()) << c["input"];
    EXPECT_EQ(img.height, c["height"].get<int>()) << c["input"];
    const uLong crc = crc32(0L, img.rgb.data(), uInt(img.rgb.size()));
    EXPECT_EQ(crc, c["decoded_crc32"].get<uLong>()) << c["input"] << " decodes differently from PIL";
  }
}

// Resize + center crop (uint8) for every input and processor config: >= 99% of values equal and
// none off by more than 2. Prints the agreement per config.
TEST(DataImageProcessor, ResizeAndCropMatchesPil) {
  const json m = manifest();
  struct Stats {
    size_t values = 0, equal = 0, images = 0;
    int max_diff = 0;
  };
  std::map<std::string, Stats> per_config;
  for (const json& c : m["cases"]) {
    const Image img = ressa::data::load_image((kFixtures / c["input"].get<std::string>()).string());
    for (const auto& [name, out] : c["outputs"].items()) {
      const ImageProcessor p =
          ImageProcessor::from_file((kFixtures / m["configs"][name]["file"].get<std::string>()).string());
      const Image ref = ressa::data::load_image((kFixtures / out["file"].get<std::string>()).string());
      const Image got = p.resize_and_crop(img);
      const std::string what = c["input"].get<std::string>() + " with " + name;
      ASSERT_EQ(got.height, ref.height) << what;
      ASSERT_EQ(got.width, ref.width) << what;
      ASSERT_EQ((p.output_size(img.height, img.width)), (std::array<int, 2>{ref.height, ref.width})) << what;
      size_t equal = 0;
      int max_diff = 0;
      for (size_t i = 0; i < got.rgb.size(); ++i) {
        const int d = std::abs(int(got.rgb[i]) - int(ref.rgb[i]));
        equal += d == 0;
        max_diff = std::max(max_diff, d);
      }
      EXPECT_GE(double(equal), 0.99 * double(got.rgb.size())) << what;
      EXPECT_LE(max_diff, 2) << what;
      Stats& s = per_config[name];
      s.values += got.rgb.size(), s.equal += equal, s.images += 1, s.max_diff = std::max(s.max_diff, max_diff);
    }
  }
  EXPECT_GE(per_config.size(), 4u);
  for (const auto& [name, s] : per_config)
    std::cout << "[ agreement ] " << name << ": " << s.images << " images, " << s.equal << "/" << s.values
              << " values equal (" << 100.0 * double(s.equal) / double(s.values) << "%), max diff "
              << s.max_diff << "\n";
}

// Rescale + normalize: every uint8 level of every channel, and sampled (c, y, x) positions of
// each processed image (from the reference's uint8 image), within 1e-6 of numpy's float32.
TEST(DataImageProcessor, NormalizeMatchesNumpy) {
  const json m = manifest();
  for (const auto& [name, cfg] : m["configs"].items()) {
    const ImageProcessor p = ImageProcessor::from_file((kFixtures / cfg["file"].get<std::string>()).string());
    Image levels{256, 1, std::vector<uint8_t>(256 * 3)};
    for (int v = 0; v < 256; ++v) levels.rgb[size_t(v) * 3] = levels.rgb[size_t(v) * 3 + 1] = levels.rgb[size_t(v) * 3 + 2] = uint8_t(v);
    const ressa::data::PixelValues px = p.to_pixels(levels);
    ASSERT_EQ(px.pixels.size(), 3u * 256u);
    for (int ch = 0; ch < 3; ++ch)
      for (int v = 0; v < 256; ++v)
        EXPECT_NEAR(px.pixels[size_t(ch) * 256 + size_t(v)], cfg["levels"][ch][v].get<double>(), 1e-6)
            << name << " channel " << ch << " level " << v;
  }
  for (const json& c : m["cases"]) {
    for (const auto& [name, out] : c["outputs"].items()) {
      const ImageProcessor p =
          ImageProcessor::from_file((kFixtures / m["configs"][name]["file"].get<std::string>()).string());
      const Image ref = ressa::data::load_image((kFixtures / out["file"].get<std::string>()).string());
      const ressa::data::PixelValues px = p.to_pixels(ref);
      ASSERT_EQ(px.height, out["height"].get<int>());
      ASSERT_EQ(px.width, out["width"].get<int>());
      for (const json& s : out["samples"]) {
        const size_t ch = s[0].get<size_t>(), y = s[1].get<size_t>(), x = s[2].get<size_t>();
        EXPECT_NEAR(px.pixels[(ch * size_t(px.height) + y) * size_t(px.width) + x], s[3].get<double>(), 1e-6)
            << c["input"] << " with " << name << " at (" << ch << ", " << y << ", " << x << ")";
      }
    }
  }
}

// process() is to_pixels(resize_and_crop()) with (3, H, W) layout.
TEST(DataImageProcessor, ProcessIsResizeCropThenNormalize) {
  const ImageProcessor p(parse(R"({"image_processor_type": "CLIPImageProcessor", "size": 20, "crop_size": 16})"));
  Image img{37, 29, std::vector<uint8_t>(37 * 29 * 3)};
  std::mt19937 g(7);
  for (auto& v : img.rgb) v = uint8_t(g());
  const ressa::data::PixelValues a = p.process(img);
  const Image mid = p.resize_and_crop(img);
  const ressa::data::PixelValues b = p.to_pixels(mid);
  EXPECT_EQ(a.height, 16);
  EXPECT_EQ(a.width, 16);
  EXPECT_EQ(a.pixels, b.pixels);
  const float want = (float(double(mid.rgb[(3 * 16 + 5) * 3 + 2]) / 255.0) - 0.40821073f) / 0.27577711f;
  EXPECT_FLOAT_EQ(a.pixels[(2 * 16 + 3) * 16 + 5], want);  // channel 2, y 3, x 5
}

// ---- resample and crop by hand -----------------------------------------------------------------

TEST(DataResample, SameSizeIsACopyAndConstantStaysConstant) {
  Image img{13, 7, std::vector<uint8_t>(13 * 7 * 3)};
  std::mt19937 g(3);
  for (auto& v : img.rgb) v = uint8_t(g());
  EXPECT_EQ(ressa::data::resize_pil(img, 13, 7, Resample::kBicubic).rgb, img.rgb);
  Image flat{13, 7, std::vector<uint8_t>(13 * 7 * 3, 77)};
  for (Resample r : {Resample::kBilinear, Resample::kBicubic})
    for (auto [w, h] : {std::pair{5, 3}, {40, 2}, {13, 30}, {1, 1}}) {
      const Image out = ressa::data::resize_pil(flat, w, h, r);
      EXPECT_EQ(out.rgb, std::vector<uint8_t>(size_t(w) * size_t(h) * 3, 77)) << to_string(r) << " " << w << "x" << h;
    }
  EXPECT_THROW(ressa::data::resize_pil(img, 0, 5, Resample::kBilinear), std::invalid_argument);
}

// Halving a row with the bilinear filter: the triangle is stretched to support 2, so output 0
// (centre 1.0) weighs inputs 0, 1, 2 by 0.75, 0.75, 0.25 / 1.75 -> (0*3 + 100*3 + 200) / 7.
TEST(DataResample, BilinearDownscaleByHand) {
  Image img{4, 1, {0, 0, 0, 100, 100, 100, 200, 200, 200, 40, 40, 40}};
  const Image out = ressa::data::resize_pil(img, 2, 1, Resample::kBilinear);
  ASSERT_EQ(out.width, 2);
  EXPECT_EQ(out.rgb[0], 71);  // 500 / 7 = 71.4
  // output 1 (centre 3.0): inputs 1, 2, 3 by 0.25, 0.75, 0.75 -> (25 + 150 + 30) / 1.75 = 117.1
  EXPECT_EQ(out.rgb[3], 117);
}

TEST(DataImageProcessor, CenterCropPadsWithZerosCentredUp) {
  // 2 x 3 image (H, W) into a 4 x 2 crop: rows padded ceil(2/2) = 1 above, columns cut at
  // (3 - 2) // 2 = 0.
  Image img{3, 2, {}};
  for (int i = 0; i < 18; ++i) img.rgb.push_back(uint8_t(10 + i));
  const Image out = ressa::data::center_crop(img, 4, 2);
  ASSERT_EQ(out.height, 4);
  ASSERT_EQ(out.width, 2);
  const std::vector<uint8_t> want = {0,  0,  0,  0,  0,  0,   // row 0: padding
                                     10, 11, 12, 13, 14, 15,  // row 1: image row 0, columns 0-1
                                     19, 20, 21, 22, 23, 24,  // row 2: image row 1
                                     0,  0,  0,  0,  0,  0};
  EXPECT_EQ(out.rgb, want);
  // 5 x 5 into 2 x 2: top = left = (5 - 2) // 2 = 1.
  Image sq{5, 5, std::vector<uint8_t>(75)};
  for (size_t i = 0; i < 75; ++i) sq.rgb[i] = uint8_t(i);
  EXPECT_EQ(ressa::data::center_crop(sq, 2, 2).rgb[0], sq.rgb[(1 * 5 + 1) * 3]);
}

// ---- preprocessor_config.json ------------------------------------------------------------------

TEST(DataImageProcessorConfig, ClipDefaults) {
  const ImageProcessorConfig c = parse(R"({"image_processor_type": "CLIPImageProcessor"})");
  EXPECT_EQ(c.type, ImageProcessorType::kClip);
  EXPECT_TRUE(c.do_resize);
  EXPECT_EQ(c.shortest_edge, 224);
  EXPECT_EQ(c.resample, Resample::kBicubic);
  EXPECT_TRUE(c.do_center_crop);
  EXPECT_EQ(c.crop_height, 224);
  EXPECT_EQ(c.crop_width, 224);
  EXPECT_TRUE(c.do_rescale);
  EXPECT_DOUBLE_EQ(c.rescale_factor, 1.0 / 255.0);
  EXPECT_TRUE(c.do_normalize);
  EXPECT_EQ(c.image_mean, (std::array<double, 3>{0.48145466, 0.4578275, 0.40821073}));
  EXPECT_EQ(c.image_std, (std::array<double, 3>{0.26862954, 0.26130258, 0.27577711}));
  EXPECT_TRUE(c.do_convert_rgb);
  const ImageProcessor p(c);
  EXPECT_EQ(p.resized_size(500, 333), (std::array<int, 2>{336, 224}));  // int(224 * 500 / 333) = 336
  EXPECT_EQ(p.resized_size(77, 1001), (std::array<int, 2>{224, 2912}));
  EXPECT_EQ(p.output_size(77, 1001), (std::array<int, 2>{224, 224}));
}

TEST(DataImageProcessorConfig, SiglipDefaults) {
  const ImageProcessorConfig c = parse(R"({"image_processor_type": "SiglipImageProcessor"})");
  EXPECT_EQ(c.type, ImageProcessorType::kSiglip);
  EXPECT_EQ(c.shortest_edge, 0);
  EXPECT_EQ(c.resize_height, 224);
  EXPECT_EQ(c.resize_width, 224);
  EXPECT_EQ(c.resample, Resample::kBilinear);
  EXPECT_FALSE(c.do_center_crop);
  EXPECT_EQ(c.image_mean, (std::array<double, 3>{0.5, 0.5, 0.5}));
  EXPECT_EQ(c.image_std, (std::array<double, 3>{0.5, 0.5, 0.5}));
  EXPECT_EQ(ImageProcessor(c).output_size(77, 1001), (std::array<int, 2>{224, 224}));
}

// Files as checkpoints ship them.
TEST(DataImageProcessorConfig, RealCheckpointFiles) {
  // llava-hf/llava-1.5-7b-hf
  const ImageProcessorConfig a = parse(R"({
    "crop_size": {"height": 336, "width": 336}, "do_center_crop": true, "do_convert_rgb": true,
    "do_normalize": true, "do_rescale": true, "do_resize": true,
    "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_processor_type": "CLIPImageProcessor",
    "image_std": [0.26862954, 0.26130258, 0.27577711], "processor_class": "LlavaProcessor",
    "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 336}})");
  EXPECT_EQ(a.shortest_edge, 336);
  EXPECT_EQ(a.crop_height, 336);
  EXPECT_EQ(a.resample, Resample::kBicubic);
  // llava-hf/llava-interleave-qwen-0.5b-hf (SigLIP, bicubic, do_convert_rgb null)
  const ImageProcessorConfig b = parse(R"({
    "do_convert_rgb": null, "do_normalize": true, "do_rescale": true, "do_resize": true,
    "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor",
    "image_std": [0.5, 0.5, 0.5], "processor_class": "LlavaProcessor", "resample": 3,
    "rescale_factor": 0.00392156862745098, "size": {"height": 384, "width": 384}})");
  EXPECT_EQ(b.type, ImageProcessorType::kSiglip);
  EXPECT_EQ(b.resize_height, 384);
  EXPECT_EQ(b.resample, Resample::kBicubic);
  EXPECT_FALSE(b.do_convert_rgb);
  // openai/clip-vit-base-patch32's older file: feature_extractor_type and integer sizes
  const ImageProcessorConfig c = parse(R"({
    "crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
    "feature_extractor_type": "CLIPFeatureExtractor", "image_mean": [0.48145466, 0.4578275, 0.40821073],
    "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224})");
  EXPECT_EQ(c.type, ImageProcessorType::kClip);
  EXPECT_EQ(c.shortest_edge, 224);
  EXPECT_EQ(c.crop_width, 224);
  // Kosmos-2's use_square_size turns the shortest edge into a square.
  const ImageProcessorConfig d =
      parse(R"({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 50}, "use_square_size": true})");
  EXPECT_EQ(d.shortest_edge, 0);
  EXPECT_EQ(d.resize_height, 50);
  EXPECT_EQ(d.resize_width, 50);
  // One number for all channels, a [H, W] size.
  const ImageProcessorConfig e =
      parse(R"({"image_processor_type": "SiglipImageProcessor", "image_mean": 0.25, "size": [30, 40]})");
  EXPECT_EQ(e.image_mean, (std::array<double, 3>{0.25, 0.25, 0.25}));
  EXPECT_EQ(e.resize_height, 30);
  EXPECT_EQ(e.resize_width, 40);
}

TEST(DataImageProcessorConfig, BadResampleIsRefused) {
  for (const char* code : {"0", "1", "4", "5", "7", "-1"}) {
    const std::string e = parse_error(
        std::string(R"({"image_processor_type": "CLIPImageProcessor", "resample": )") + code + "}", "resample");
    EXPECT_TRUE(contains(e, "supported: 2 (BILINEAR), 3 (BICUBIC)")) << e;
  }
  parse_error(R"({"image_processor_type": "CLIPImageProcessor", "resample": 3.0})", "resample");
  parse_error(R"({"image_processor_type": "CLIPImageProcessor", "resample": "bicubic"})", "resample");
  parse_error(R"({"image_processor_type": "CLIPImageProcessor", "resample": null})", "resample");
}

TEST(DataImageProcessorConfig, MissingFileNamesThePath) {
  ressa::test::TempDir d;
  const std::string path = (d / "preprocessor_config.json").string();
  const std::string e = error_of([&] { ressa::data::load_image_processor_config(path); });
  EXPECT_TRUE(contains(e, "[ImageProcessor] " + path + ": ")) << e;
  EXPECT_TRUE(contains(e, "not found")) << e;
  std::ofstream(path) << R"({"image_processor_type": "SiglipImageProcessor", "do_resize": 1})";
  const std::string e2 = error_of([&] { ImageProcessor::from_file(path); });
  EXPECT_TRUE(contains(e2, "[ImageProcessor] " + path + ": do_resize: must be true or false")) << e2;
}

TEST(DataImageProcessorConfig, WrongTypesNameTheField) {
  const std::string clip = R"({"image_processor_type": "CLIPImageProcessor", )";
  parse_error(clip + R"("do_resize": "yes"})", "do_resize");
  parse_error(clip + R"("do_normalize": 1})", "do_normalize");
  parse_error(clip + R"("size": "big"})", "size");
  parse_error(clip + R"("size": {"shortest_edge": 224.5}})", "size.shortest_edge");
  parse_error(clip + R"("size": {"height": 0, "width": 5}})", "size.height");
  parse_error(clip + R"("size": {"height": 5, "width": 99999}})", "size.width");
  parse_error(clip + R"("size": [1, 2, 3]})", "size");
  parse_error(clip + R"("crop_size": {"height": 5}})", "crop_size");
  parse_error(clip + R"("crop_size": true})", "crop_size");
  parse_error(clip + R"("rescale_factor": "1/255"})", "rescale_factor");
  parse_error(clip + R"("image_mean": [0.5, 0.5]})", "image_mean");
  parse_error(clip + R"("image_std": [0.5, "x", 0.5]})", "image_std[1]");
  parse_error(clip + R"("image_std": [0.5, 0, 0.5]})", "image_std");
  parse_error(clip + R"("do_convert_rgb": "true"})", "do_convert_rgb");
  parse_error(R"({"image_processor_type": 5})", "image_processor_type");
  parse_error("[1, 2]", "(file)");
  parse_error("{not json", "(file)");
}

TEST(DataImageProcessorConfig, UnsupportedSettingsAreRefused) {
  std::string e = parse_error(R"({"image_processor_type": "LlavaOnevisionImageProcessor"})", "image_processor_type");
  EXPECT_TRUE(contains(e, "anyres")) << e;
  e = parse_error(R"({"image_processor_type": "CLIPImageProcessorFast"})", "image_processor_type");
  EXPECT_TRUE(contains(e, "use_fast=False")) << e;
  e = parse_error(R"({"image_processor_type": "ViTImageProcessor"})", "image_processor_type");
  EXPECT_TRUE(contains(e, "supported: CLIPImageProcessor, SiglipImageProcessor")) << e;
  parse_error(R"({"processor_class": "LlavaProcessor"})", "image_processor_type");
  e = parse_error(R"({"image_processor_type": "CLIPImageProcessor", "do_pad": true})", "do_pad");
  EXPECT_TRUE(contains(e, "unknown field")) << e;
  e = parse_error(R"({"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 5, "longest_edge": 9}})",
                  "size");
  EXPECT_TRUE(contains(e, "supported:")) << e;
  e = parse_error(R"({"image_processor_type": "SiglipImageProcessor", "size": {"shortest_edge": 5}})", "size");
  e = parse_error(R"({"image_processor_type": "SiglipImageProcessor", "size": 5})", "size");
  e = parse_error(R"({"image_processor_type": "SiglipImageProcessor", "do_center_crop": true})", "do_center_crop");
  EXPECT_NO_THROW(parse(R"({"image_processor_type": "SiglipImageProcessor", "do_center_crop": false})"));
}

TEST(DataImageProcessorConfig, ResizeBeyondLimitIsRefused) {
  const ImageProcessor p(parse(R"({"image_processor_type": "CLIPImageProcessor", "size": 4096})"),
                         "m/preprocessor_config.json");
  const std::string e = error_of([&] { p.resized_size(2, 100); });
  EXPECT_TRUE(contains(e, "[ImageProcessor] m/preprocessor_config.json: size: ")) << e;
}
