// PIL-compatible image resampling: the result of Pillow's Image.resize(size, resample) on an
// 8-bit RGB image, bit for bit. Hugging Face's image processors resize through PIL, so this is
// what makes ressa's pixels equal to theirs (see image_processor.h).
//
// Pillow's algorithm (libImaging/Resample.c), restated:
//  * separable convolution: a horizontal pass over the rows the vertical pass needs, rounded to
//    8 bits, then a vertical pass, rounded to 8 bits; an axis whose size does not change is not
//    filtered at all;
//  * output sample i of an axis resized from n to m has centre c = (i + 0.5) * n / m in input
//    coordinates; when downscaling the filter is stretched by the factor s = n / m (antialias;
//    s is taken as 1 when upscaling), so its support is support * s; input samples j in
//    [trunc(c - support*s + 0.5), trunc(c + support*s + 0.5)) clipped to [0, n) get weight
//    filter((j - c + 0.5) / s), and the weights are divided by their sum;
//  * weights become int32 fixed point with 22 fractional bits (32 - 8 - 2: 8 for the value,
//    2 of headroom for negative lobes), rounded half away from zero; a pass sums value * weight
//    starting from 0.5 (1 << 21), shifts right by 22 and clips to [0, 255].
// Filters: bilinear (triangle, support 1) and bicubic (Keys, a = -0.5, support 2).
#pragma once
#include <cstdint>

#include "ressa/data/image.h"

namespace ressa::data {

// The PIL resampling filters ressa implements. PIL's integer codes: NEAREST 0, LANCZOS 1,
// BILINEAR 2, BICUBIC 3, BOX 4, HAMMING 5; only 2 and 3 are supported.
enum class Resample { kBilinear, kBicubic };

// "bilinear" / "bicubic".
const char* to_string(Resample r);

// Limits of a resize target: a side up to kMaxResizeDim (a shortest-edge resize of a very long
// image may pass kMaxImageDim before it is cropped), at most kMaxResizePixels in all.
constexpr int kMaxResizeDim = 65536;
constexpr int64_t kMaxResizePixels = int64_t(kMaxImageDim) * kMaxImageDim;

// Resizes `img` (H, W, 3) to (h, w, 3) exactly as PIL's Image.resize((w, h), resample) does for
// an RGB image. Returns a copy when the size does not change. Throws std::invalid_argument for an
// inconsistent image or a target size beyond the limits above.
Image resize_pil(const Image& img, int w, int h, Resample filter);

}  // namespace ressa::data
