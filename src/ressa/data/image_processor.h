// ImageProcessor: image -> model pixels as Hugging Face's CLIPImageProcessor and
// SiglipImageProcessor (the PIL-based "slow" processors) compute them for one image, driven by a
// checkpoint's preprocessor_config.json. Torch-free.
//
// Steps, each optional per the config, in HF's order:
//   resize      PIL Image.resize (resample.h), to
//                 CLIP  size {"shortest_edge": N}: short side N, long side int(N * long / short)
//                       size {"height": H, "width": W}: exactly H x W
//                 SigLIP size {"height": H, "width": W}
//   center crop CLIP only: crop_h x crop_w window at top = (h - crop_h) // 2 (floor), likewise
//               left; where the image is smaller than the crop it is centred on a zero canvas,
//               offset ceil((crop - size) / 2)
//   rescale     float32(double(v) * rescale_factor)  (numpy: astype(float64) * s, to float32)
//   normalize   (x - float32(mean[c])) / float32(std[c]) in float32
// Output: float32 (3, H, W), channel-major.
//
// Behaviour that differs from HF, all on inputs HF itself mishandles: HF's channel-format
// inference reads an image of height 1 or 3 as channels-first (ressa does not); with
// do_convert_rgb false HF keeps a grey or RGBA image's 1 or 4 channels (ressa's decoder always
// gives RGB, so do_convert_rgb changes nothing here).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "ressa/data/image.h"
#include "ressa/data/resample.h"

namespace ressa::data {

// The image processor classes ressa reproduces.
enum class ImageProcessorType { kClip, kSiglip };
// "CLIPImageProcessor" / "SiglipImageProcessor".
const char* to_string(ImageProcessorType t);

// preprocessor_config.json, resolved: every field holds the value HF's processor class would use,
// its default where the file leaves it out. Defaults below are CLIPImageProcessor's;
// parse_image_processor_config applies SigLIP's for a SigLIP file.
struct ImageProcessorConfig {
  ImageProcessorType type = ImageProcessorType::kClip;
  bool do_resize = true;                  // resize first
  int shortest_edge = 224;                // > 0: resize the short side to this (CLIP only) ...
  int resize_height = 0, resize_width = 0;  // ... else resize to exactly this (both > 0)
  Resample resample = Resample::kBicubic;   // PIL filter (codes 2 and 3 accepted)
  bool do_center_crop = true;             // CLIP only
  int crop_height = 224, crop_width = 224;
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<double, 3> image_mean = {0.48145466, 0.4578275, 0.40821073};  // OPENAI_CLIP_MEAN
  std::array<double, 3> image_std = {0.26862954, 0.26130258, 0.27577711};   // OPENAI_CLIP_STD
  bool do_convert_rgb = true;             // accepted either way: see the note above
};

// Parses preprocessor_config.json text; `where` names the file in errors. Throws
// std::runtime_error "[ImageProcessor] <where>: <field>: <what>" for invalid JSON, a missing or
// unsupported image processor type, a field of the wrong type or out of range, a value ressa does
// not implement (with what is supported), or a field it does not know.
ImageProcessorConfig parse_image_processor_config(const std::string& text, const std::string& where);
// Reads and parses a preprocessor_config.json file (std::runtime_error if it is missing).
ImageProcessorConfig load_image_processor_config(const std::string& path);

// Model input for one image: pixels is (3, height, width) float32, channel-major.
struct PixelValues {
  int height = 0, width = 0;
  std::vector<float> pixels;
};

// Rescale and normalize of one uint8 channel value v of channel c:
//   x = do_rescale ? float32(double(v) * rescale_factor) : float32(v)
//   x = do_normalize ? (x - mean[c]) / std[c] (float32) : x
// train/vqa_data.cpp applies the same arithmetic to uint8 image batches with torch.
struct PixelNorm {
  bool do_rescale = true;
  double rescale_factor = 1.0 / 255.0;
  bool do_normalize = true;
  std::array<float, 3> mean = {0, 0, 0}, std = {1, 1, 1};
  float apply(uint8_t v, int c) const {
    float x = do_rescale ? float(double(v) * rescale_factor) : float(v);
    return do_normalize ? (x - mean[c]) / std[c] : x;
  }
  // (3, H, W) float32 of a (H, W, 3) uint8 image.
  PixelValues to_pixels(const Image& img) const;
};

class ImageProcessor {
 public:
  // `where` names the config's source in errors about images it cannot process.
  explicit ImageProcessor(ImageProcessorConfig config, std::string where = "preprocessor_config.json");
  // Loads <path> (a preprocessor_config.json file).
  static ImageProcessor from_file(const std::string& path);

  const ImageProcessorConfig& config() const { return config_; }

  // Size after the resize step for a (height, width) input, as {height, width}; the input size
  // when do_resize is false. Throws std::runtime_error beyond kMaxResizeDim / kMaxResizePixels.
  std::array<int, 2> resized_size(int height, int width) const;
  // Size of the processed image for a (height, width) input, as {height, width}.
  std::array<int, 2> output_size(int height, int width) const;

  // Resize and center crop: the uint8 (H, W, 3) image just before rescale and normalize.
  Image resize_and_crop(const Image& img) const;
  // Rescale and normalize a resized, cropped (H, W, 3) image into (3, H, W) float32.
  PixelValues to_pixels(const Image& img) const;
  // The rescale and normalize steps of the config.
  PixelNorm pixel_norm() const;
  // The whole pipeline: to_pixels(resize_and_crop(img)).
  PixelValues process(const Image& img) const;

 private:
  ImageProcessorConfig config_;
  std::string where_;
};

// HF center_crop on a uint8 (H, W, 3) image: the crop_h x crop_w window centred with floor
// rounding; zero padding, centred with ceil rounding, where the image is smaller.
Image center_crop(const Image& img, int crop_h, int crop_w);

}  // namespace ressa::data
