// RGB8 images for the data layer: decode PNG/JPEG (stb_image), encode PNG atomically
// (stb_image_write), and bilinear resize. Layout everywhere: HWC, RGB, uint8, row-major,
// rgb.size() == height * width * 3, pixel (y, x) channel c at rgb[(y * width + x) * 3 + c].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ressa::data {

struct Image {
  int width = 0, height = 0;
  std::vector<uint8_t> rgb;  // (H, W, 3) RGB8, row-major
};

// Largest width or height load_image accepts (guards against decompression bombs).
constexpr int kMaxImageDim = 8192;

// Decodes a PNG or JPEG file (other formats are rejected), converted to 3 channels (grey is
// replicated, alpha dropped). Throws std::runtime_error "[load_image] <path>: <what>" for a
// missing file, undecodable data, or a zero / > kMaxImageDim dimension.
Image load_image(const std::string& path);
// Decodes PNG/JPEG bytes held in memory with the same checks; `where` names the source.
Image decode_image(const std::string& bytes, const std::string& where);

// Encodes `img` as an 8-bit RGB PNG file image in memory (std::invalid_argument if the Image
// is inconsistent).
std::string encode_png(const Image& img);

// Encodes `img` as an 8-bit RGB PNG in memory and writes it atomically (temp + rename).
// Throws std::invalid_argument for an inconsistent Image, std::runtime_error for I/O errors.
void save_png(const std::string& path, const Image& img);

// Bilinear resize to (h, w) with half-pixel centres (align_corners = false, no antialiasing;
// matches torch.nn.functional.interpolate(mode="bilinear") up to rounding). Edge pixels are
// clamped. Output values are rounded to nearest.
Image resize_bilinear(const Image& img, int w, int h);

}  // namespace ressa::data
