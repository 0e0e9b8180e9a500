// Image I/O: PNG with stb_image / stb_image_write (Debian libstb-dev, header-only use: this is
// the only translation unit that defines the stb implementations), JPEG with libjpeg-turbo
// (Debian libjpeg-dev), and bilinear resize. JPEG went to libjpeg-turbo after the fuzzer found a
// fourth input that stb_image 2.27's JPEG decoder mishandles (see decode_jpeg).
#include "ressa/data/image.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <csetjmp>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <jpeglib.h>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"

// PNG pixel data is written as stored (uncompressed) deflate blocks, a valid zlib stream.
// stb_image_write's own deflate costs ~2 ms per noisy 64x64 ShapesVQA image and then falls
// back to stored blocks anyway (noise does not compress), which made dataset generation
// CPU-bound; storing is ~100x faster. Natural images come out ~2-3x larger than zlib's.
static unsigned char* ressa_zlib_store(unsigned char* data, int data_len, int* out_len,
                                       int /*quality*/) {
  const int max_block = 65535;
  const int blocks = std::max(1, (data_len + max_block - 1) / max_block);
  const size_t size = 2 + size_t(blocks) * 5 + size_t(data_len) + 4;
  auto* out = static_cast<unsigned char*>(std::malloc(size));  // freed by stb (STBIW_FREE)
  if (!out) return nullptr;
  size_t o = 0;
  out[o++] = 0x78, out[o++] = 0x01;  // zlib header: deflate, 32K window, fastest
  int pos = 0;
  for (int b = 0; b < blocks; ++b) {
    const int len = std::min(max_block, data_len - pos);
    out[o++] = b + 1 == blocks;  // BFINAL, BTYPE = 00 (stored)
    out[o++] = uint8_t(len), out[o++] = uint8_t(len >> 8);
    out[o++] = uint8_t(~len), out[o++] = uint8_t(~len >> 8);
    if (len > 0) std::memcpy(out + o, data + pos, size_t(len));
    o += size_t(len), pos += len;
  }
  uint32_t s1 = 1, s2 = 0;  // Adler-32 of the uncompressed data
  for (int i = 0; i < data_len;) {
    const int end = std::min(data_len, i + 5552);  // 5552: largest n without overflow
    for (; i < end; ++i) s1 += data[i], s2 += s1;
    s1 %= 65521, s2 %= 65521;
  }
  const uint32_t adler = (s2 << 16) | s1;
  for (int k = 3; k >= 0; --k) out[o++] = uint8_t(adler >> (8 * k));
  *out_len = int(o);
  return out;
}
#define STBIW_ZLIB_COMPRESS ressa_zlib_store

// Third-party code: silence its warnings under -Wall -Wextra.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-but-set-variable"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wsign-compare"
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG
#define STBI_FAILURE_USERMSG
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace ressa::data {

namespace {
// With stored (uncompressed) blocks the PNG row filter cannot shrink the file, so skip stb's
// per-row search over all 5 filters (half of the encoding time). Set once at load time; the
// library never changes it afterwards.
const bool kPngFilterNone = (stbi_write_force_png_filter = 0, true);

// JPEG through libjpeg-turbo. stb_image 2.27's JPEG decoder failed the fuzzer four times: a DHT
// table with more than 256 codes (write past stbi__huffman::size), a scan selecting a Huffman
// table no DHT defined (reads of uninitialised memory), and entropy data cut short by a marker
// (negative bit count, then a shift by 32 in stbi__grow_buffer_unsafe; fixed upstream in 2.28,
// which Debian 12 does not have). The first two were guarded by a marker walk; the third cannot
// be seen without decoding. libjpeg-turbo validates all of this itself (and is fuzzed upstream).
// Errors longjmp back here; warnings (e.g. a truncated file, decoded as far as it goes) are
// accepted silently, as every viewer does.
struct JpegError {
  jpeg_error_mgr mgr;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

void jpeg_fail(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegError*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, err->message);
  std::longjmp(err->jump, 1);
}
void jpeg_quiet(j_common_ptr, int) {}

// Decodes into *out (a pointer, so nothing the longjmp crosses needs a destructor or is an
// automatic variable modified after setjmp). Returns "" or the error message.
std::string decode_jpeg_into(const unsigned char* data, size_t len, Image* out) {
  jpeg_decompress_struct cinfo;
  JpegError err;
  cinfo.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = jpeg_fail;
  err.mgr.emit_message = jpeg_quiet;
  err.message[0] = 0;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&cinfo);
    return err.message[0] ? err.message : "libjpeg error";
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, static_cast<unsigned long>(len));
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.image_width == 0 || cinfo.image_height == 0 || cinfo.image_width > unsigned(kMaxImageDim) ||
      cinfo.image_height > unsigned(kMaxImageDim)) {
    const std::string bad = "image size " + std::to_string(cinfo.image_width) + "x" +
                            std::to_string(cinfo.image_height) + " outside 1.." + std::to_string(kMaxImageDim);
    jpeg_destroy_decompress(&cinfo);
    return bad;
  }
  cinfo.out_color_space = JCS_RGB;  // grey is replicated; CMYK/YCCK are rejected by libjpeg
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 3) {
    jpeg_destroy_decompress(&cinfo);
    return "unsupported JPEG colour space";
  }
  out->width = int(cinfo.output_width);
  out->height = int(cinfo.output_height);
  out->rgb.assign(size_t(out->width) * size_t(out->height) * 3, 0);
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out->rgb.data() + size_t(cinfo.output_scanline) * size_t(out->width) * 3;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return "";
}

// stb_image 2.27 passes a null buffer to memcpy (undefined behaviour, found by
// tests/fuzz/fuzz_image) when a PNG's first IDAT chunk is empty. Empty IDAT chunks carry no data,
// so they are dropped before decoding; returns true and fills `out` when there were any.
bool drop_empty_png_idat(const std::string& b, std::string& out) {
  static const char kSig[8] = {'\x89', 'P', 'N', 'G', '\r', '\n', '\x1a', '\n'};
  if (b.size() < 8 || b.compare(0, 8, kSig, 8) != 0) return false;
  auto be32 = [&](size_t i) {
    return (uint32_t(uint8_t(b[i])) << 24) | (uint32_t(uint8_t(b[i + 1])) << 16) |
           (uint32_t(uint8_t(b[i + 2])) << 8) | uint32_t(uint8_t(b[i + 3]));
  };
  bool dropped = false;
  std::string kept = b.substr(0, 8);
  size_t pos = 8;
  // stb reads a chunk's length and type before anything else, so an empty IDAT whose CRC is
  // cut off by the end of the file (found by the fuzzer too) is dropped as well.
  while (pos + 8 <= b.size()) {  // chunk: length, type, data, CRC
    const uint64_t chunk = 12 + uint64_t(be32(pos));
    if (chunk == 12 && b.compare(pos + 4, 4, "IDAT") == 0) {
      dropped = true;
    } else {
      if (pos + chunk > b.size()) break;  // truncated: stb reports it
      kept.append(b, pos, size_t(chunk));
    }
    pos += size_t(chunk);
  }
  kept.append(b, std::min(pos, b.size()), std::string::npos);
  if (dropped) out = std::move(kept);
  return dropped;
}

void check_image(const char* fn, const Image& img) {
  RESSA_CHECK_ARG(img.width > 0 && img.height > 0, "[", fn, "] image has invalid size ", img.width,
                  "x", img.height);
  const size_t want = size_t(img.width) * size_t(img.height) * 3;
  RESSA_CHECK_ARG(img.rgb.size() == want, "[", fn, "] image ", img.width, "x", img.height,
                  " needs ", want, " RGB bytes, got ", img.rgb.size());
}
}  // namespace

Image load_image(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("[load_image] ", path, ": file not found");
  return decode_image(read_file(path), path);
}

Image decode_image(const std::string& file_bytes, const std::string& path) {
  if (file_bytes.size() > size_t(INT32_MAX)) fail("[load_image] ", path, ": file too large");
  if (file_bytes.size() >= 2 && uint8_t(file_bytes[0]) == 0xFF && uint8_t(file_bytes[1]) == 0xD8) {
    Image img;
    const std::string bad =
        decode_jpeg_into(reinterpret_cast<const unsigned char*>(file_bytes.data()), file_bytes.size(), &img);
    if (!bad.empty()) fail("[load_image] ", path, ": cannot decode JPEG (", bad, ")");
    return img;
  }
  std::string without_empty_idat;
  const std::string& bytes =
      drop_empty_png_idat(file_bytes, without_empty_idat) ? without_empty_idat : file_bytes;
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int len = static_cast<int>(bytes.size());  // <= file_bytes.size() <= INT32_MAX, checked above
  int w = 0, h = 0, c = 0;
  // Check the header first so a huge declared size is rejected before any allocation.
  if (!stbi_info_from_memory(data, len, &w, &h, &c))
    fail("[load_image] ", path, ": not a decodable PNG/JPEG (", stbi_failure_reason(), ")");
  if (w <= 0 || h <= 0 || w > kMaxImageDim || h > kMaxImageDim)
    fail("[load_image] ", path, ": image size ", w, "x", h, " outside 1..", kMaxImageDim);
  stbi_uc* px = stbi_load_from_memory(data, len, &w, &h, &c, 3);
  if (!px) fail("[load_image] ", path, ": cannot decode image (", stbi_failure_reason(), ")");
  Image img;
  img.width = w;
  img.height = h;
  img.rgb.assign(px, px + size_t(w) * size_t(h) * 3);
  stbi_image_free(px);
  return img;
}

std::string encode_png(const Image& img) {
  check_image("encode_png", img);
  (void)kPngFilterNone;
  std::string out;
  auto sink = [](void* ctx, void* data, int size) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size_t(size));
  };
  if (!stbi_write_png_to_func(sink, &out, img.width, img.height, 3, img.rgb.data(), img.width * 3))
    fail("[encode_png] PNG encoding of a ", img.width, "x", img.height, " image failed");
  return out;
}

void save_png(const std::string& path, const Image& img) {
  check_image("save_png", img);
  write_file_atomic(path, encode_png(img));
}

Image resize_bilinear(const Image& img, int w, int h) {
  check_image("resize_bilinear", img);
  RESSA_CHECK_ARG(w > 0 && h > 0 && w <= kMaxImageDim && h <= kMaxImageDim,
                  "[resize_bilinear] target size ", w, "x", h, " outside 1..", kMaxImageDim);
  Image out;
  out.width = w;
  out.height = h;
  out.rgb.resize(size_t(w) * size_t(h) * 3);
  // Source coordinate of output pixel i: (i + 0.5) * in / out - 0.5, clamped to the image.
  auto axis = [](int n_out, int n_in, std::vector<int>& i0, std::vector<int>& i1,
                 std::vector<float>& f) {
    i0.resize(n_out), i1.resize(n_out), f.resize(n_out);
    const double scale = double(n_in) / n_out;
    for (int i = 0; i < n_out; ++i) {
      double s = std::clamp((i + 0.5) * scale - 0.5, 0.0, double(n_in - 1));
      i0[i] = int(std::floor(s));
      i1[i] = std::min(i0[i] + 1, n_in - 1);
      f[i] = float(s - i0[i]);
    }
  };
  std::vector<int> x0, x1, y0, y1;
  std::vector<float> fx, fy;
  axis(w, img.width, x0, x1, fx);
  axis(h, img.height, y0, y1, fy);
  const uint8_t* src = img.rgb.data();
  const size_t stride = size_t(img.width) * 3;
  for (int y = 0; y < h; ++y) {
    const uint8_t* r0 = src + y0[y] * stride;
    const uint8_t* r1 = src + y1[y] * stride;
    for (int x = 0; x < w; ++x) {
      for (int c = 0; c < 3; ++c) {
        float top = r0[x0[x] * 3 + c] * (1 - fx[x]) + r0[x1[x] * 3 + c] * fx[x];
        float bot = r1[x0[x] * 3 + c] * (1 - fx[x]) + r1[x1[x] * 3 + c] * fx[x];
        float v = top * (1 - fy[y]) + bot * fy[y];
        out.rgb[(size_t(y) * w + x) * 3 + c] = uint8_t(std::clamp(std::lround(v), 0L, 255L));
      }
    }
  }
  return out;
}

}  // namespace ressa::data
