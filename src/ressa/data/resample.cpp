// PIL-compatible resampling (resample.h): per-axis fixed-point weights, then a horizontal and a
// vertical 8-bit pass, with Pillow's rounding at every step.
#include "ressa/data/resample.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "ressa/core/error.h"

namespace ressa::data {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // fractional bits of a fixed-point weight

double bilinear_weight(double x) {
  x = std::fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

// Keys cubic convolution with a = -0.5 (PIL's BICUBIC).
double bicubic_weight(double x) {
  constexpr double a = -0.5;
  x = std::fabs(x);
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return (((x - 5.0) * x + 8.0) * x - 4.0) * a;
  return 0.0;
}

// The weights of one axis resized from n_in to n_out samples: output sample i reads the
// count[i] input samples from first[i], with fixed-point weights w[i * taps + t].
struct AxisWeights {
  int taps = 0;
  std::vector<int> first, count;
  std::vector<int32_t> w;
};

AxisWeights axis_weights(int n_in, int n_out, Resample filter) {
  const double support_unit = filter == Resample::kBicubic ? 2.0 : 1.0;
  double (*weight)(double) = filter == Resample::kBicubic ? bicubic_weight : bilinear_weight;
  // PIL passes the crop box as floats; (box end - box start) is n_in exactly for n_in < 2^24.
  const double scale = double(float(n_in) - 0.0f) / n_out;
  const double stretch = std::max(scale, 1.0);  // filter widening when downscaling (antialias)
  const double support = support_unit * stretch;
  const double inv_stretch = 1.0 / stretch;

  AxisWeights a;
  a.taps = int(std::ceil(support)) * 2 + 1;
  a.first.resize(size_t(n_out));
  a.count.resize(size_t(n_out));
  a.w.assign(size_t(n_out) * size_t(a.taps), 0);
  std::vector<double> k(size_t(a.taps));
  for (int i = 0; i < n_out; ++i) {
    const double centre = (i + 0.5) * scale;
    // int() truncates toward zero, as in PIL; a negative start is then clipped to 0.
    const int lo = std::max(int(centre - support + 0.5), 0);
    const int hi = std::min(int(centre + support + 0.5), n_in);
    const int n = hi - lo;
    double sum = 0.0;
    for (int t = 0; t < n; ++t) {
      k[size_t(t)] = weight((t + lo - centre + 0.5) * inv_stretch);
      sum += k[size_t(t)];
    }
    int32_t* out = &a.w[size_t(i) * size_t(a.taps)];
    for (int t = 0; t < n; ++t) {
      const double v = (sum != 0.0 ? k[size_t(t)] / sum : k[size_t(t)]) * double(1 << kPrecisionBits);
      out[t] = int32_t(v < 0 ? v - 0.5 : v + 0.5);  // half away from zero, then truncate
    }
    a.first[size_t(i)] = lo;
    a.count[size_t(i)] = n;
  }
  return a;
}

// Fixed-point sum (starting at one half) back to 8 bits: drop the fraction, clip to [0, 255].
uint8_t clip8(int64_t acc) {
  return uint8_t(std::clamp<int64_t>(acc >> kPrecisionBits, 0, 255));
}

}  // namespace

const char* to_string(Resample r) { return r == Resample::kBicubic ? "bicubic" : "bilinear"; }

Image resize_pil(const Image& img, int w, int h, Resample filter) {
  RESSA_CHECK_ARG(img.width > 0 && img.height > 0 &&
                      img.rgb.size() == size_t(img.width) * size_t(img.height) * 3,
                  "[resize_pil] inconsistent image ", img.width, "x", img.height, " with ",
                  img.rgb.size(), " bytes");
  RESSA_CHECK_ARG(w > 0 && h > 0 && w <= kMaxResizeDim && h <= kMaxResizeDim &&
                      int64_t(w) * h <= kMaxResizePixels,
                  "[resize_pil] target size ", w, "x", h, " outside 1..", kMaxResizeDim, " per side or beyond ",
                  kMaxResizePixels, " pixels");
  const int64_t half = int64_t(1) << (kPrecisionBits - 1);

  // Rows of the source the vertical pass reads: [row_lo, row_hi).
  const AxisWeights ay = axis_weights(img.height, h, filter);
  const int row_lo = ay.first.front();
  const int row_hi = ay.first.back() + ay.count.back();

  // Horizontal pass: (row_hi - row_lo, w, 3), or the source rows themselves if w is unchanged.
  Image mid;
  int mid_row0 = 0;  // source row held by mid's row 0
  if (w != img.width) {
    const AxisWeights ax = axis_weights(img.width, w, filter);
    mid.width = w;
    mid.height = row_hi - row_lo;
    mid.rgb.resize(size_t(mid.width) * size_t(mid.height) * 3);
    mid_row0 = row_lo;
    for (int y = 0; y < mid.height; ++y) {
      const uint8_t* src = &img.rgb[size_t(y + row_lo) * size_t(img.width) * 3];
      uint8_t* dst = &mid.rgb[size_t(y) * size_t(w) * 3];
      for (int x = 0; x < w; ++x) {
        const int32_t* k = &ax.w[size_t(x) * size_t(ax.taps)];
        const uint8_t* s = src + size_t(ax.first[size_t(x)]) * 3;
        int64_t r = half, g = half, b = half;
        for (int t = 0; t < ax.count[size_t(x)]; ++t, s += 3) {
          r += int64_t(s[0]) * k[t];
          g += int64_t(s[1]) * k[t];
          b += int64_t(s[2]) * k[t];
        }
        dst[size_t(x) * 3 + 0] = clip8(r);
        dst[size_t(x) * 3 + 1] = clip8(g);
        dst[size_t(x) * 3 + 2] = clip8(b);
      }
    }
  } else if (h == img.height) {
    return img;
  }
  const Image& in = w != img.width ? mid : img;
  if (h == img.height) return mid;

  // Vertical pass: (h, w, 3).
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(size_t(w) * size_t(h) * 3);
  const size_t stride = size_t(w) * 3;
  for (int y = 0; y < h; ++y) {
    const int32_t* k = &ay.w[size_t(y) * size_t(ay.taps)];
    const uint8_t* src = &in.rgb[size_t(ay.first[size_t(y)] - mid_row0) * stride];
    uint8_t* dst = &out.rgb[size_t(y) * stride];
    for (size_t c = 0; c < stride; ++c) {
      int64_t acc = half;
      for (int t = 0; t < ay.count[size_t(y)]; ++t) acc += int64_t(src[size_t(t) * stride + c]) * k[t];
      dst[c] = clip8(acc);
    }
  }
  return out;
}

}  // namespace ressa::data
