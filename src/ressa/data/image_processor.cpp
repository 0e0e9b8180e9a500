// ImageProcessor (image_processor.h): preprocessor_config.json as CLIPImageProcessor and
// SiglipImageProcessor read it, and their resize / center crop / rescale / normalize steps.
#include "ressa/data/image_processor.h"

#include <cmath>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"

namespace ressa::data {

namespace {
using json = nlohmann::json;

// Fields read into ImageProcessorConfig, per class (the arguments of the class's __init__).
const std::set<std::string> kClipFields = {
    "do_resize",    "size",       "resample",       "do_center_crop", "crop_size",      "do_rescale",
    "rescale_factor", "do_normalize", "image_mean", "image_std",      "do_convert_rgb", "use_square_size"};
const std::set<std::string> kSiglipFields = {
    "do_resize",  "size",       "resample", "do_rescale",     "rescale_factor", "do_normalize",
    "image_mean", "image_std", "do_convert_rgb", "do_center_crop", "crop_size"};

// Fields accepted and ignored because they do not change how one image becomes pixels:
//   image_processor_type, feature_extractor_type  read to choose the class, nothing else
//   processor_class, _processor_class             the multimodal processor that wraps this one
//                                                 (LlavaProcessor, CLIPProcessor); it handles text
//   auto_map                                      remote-code class names; the class is checked
//                                                 through image_processor_type
//   _valid_processor_keys                         the list of keyword names that transformers
//                                                 4.39-4.41 wrote into saved configs by mistake
//   image_seq_length, patch_size,                 image token counting for the text side
//   vision_feature_select_strategy,               (PaliGemma, LlavaProcessor); pixels unchanged
//   num_additional_image_tokens
// Any other field is refused: it may be a setting ressa does not implement (do_pad,
// image_grid_pinpoints, crop_pct, ...), and ignoring it could give silently different pixels.
const std::set<std::string> kIgnoredFields = {
    "image_processor_type", "feature_extractor_type", "processor_class", "_processor_class",
    "auto_map", "_valid_processor_keys", "image_seq_length", "patch_size",
    "vision_feature_select_strategy", "num_additional_image_tokens"};

std::string join(const std::set<std::string>& s) {
  std::string out;
  for (const std::string& x : s) out += (out.empty() ? "" : ", ") + x;
  return out;
}

// Reads one preprocessor_config.json; every error names the file and the field.
class Reader {
 public:
  Reader(const json& j, const std::string& where) : j_(j), where_(where) {}

  template <typename... Args>
  [[noreturn]] void error(const std::string& field, Args&&... args) const {
    fail("[ImageProcessor] ", where_, ": ", field, ": ", std::forward<Args>(args)...);
  }

  // The field's value, or nullptr when absent or null (HF's constructors treat null as absent).
  const json* find(const char* field) const {
    auto it = j_.find(field);
    return it == j_.end() || it->is_null() ? nullptr : &*it;
  }
  bool has(const char* field) const { return j_.find(field) != j_.end(); }

  void get_bool(const char* field, bool& out) const {
    auto it = j_.find(field);
    if (it == j_.end()) return;
    if (!it->is_boolean()) error(field, "must be true or false, got ", it->type_name());
    out = it->get<bool>();
  }

  int64_t to_int(const json& v, const std::string& field) const {
    if (v.is_number_unsigned()) {
      const uint64_t u = v.get<uint64_t>();
      if (u > uint64_t(std::numeric_limits<int64_t>::max())) error(field, u, " is too large");
      return int64_t(u);
    }
    if (v.is_number_integer()) return v.get<int64_t>();
    error(field, "must be an integer, got ", v.is_number() ? v.dump() : v.type_name());
  }

  // An image side: an integer in 1..kMaxImageDim.
  int to_side(const json& v, const std::string& field) const {
    const int64_t n = to_int(v, field);
    if (n < 1 || n > kMaxImageDim) error(field, n, " is outside 1..", kMaxImageDim);
    return int(n);
  }

  double to_number(const json& v, const std::string& field) const {
    if (!v.is_number()) error(field, "must be a number, got ", v.type_name());
    const double d = v.get<double>();
    if (!std::isfinite(d)) error(field, "must be finite, got ", v.dump());
    return d;
  }

  // image_mean / image_std: three numbers, or one number for all channels (HF broadcasts it).
  void get_channels(const char* field, std::array<double, 3>& out, bool nonzero) const {
    const json* v = find(field);
    if (!v) return;
    std::array<double, 3> got{};
    if (v->is_number()) {
      got.fill(to_number(*v, field));
    } else if (v->is_array() && v->size() == 3) {
      for (size_t c = 0; c < 3; ++c) got[c] = to_number((*v)[c], field + std::string("[") + std::to_string(c) + "]");
    } else {
      error(field, "must be a list of 3 numbers (one per RGB channel) or one number, got ",
            v->is_array() ? "a list of " + std::to_string(v->size()) : std::string(v->type_name()));
    }
    if (nonzero)
      for (double d : got)
        if (d == 0.0) error(field, "holds 0 (the normalization divides by it)");
    out = got;
  }

 private:
  const json& j_;
  const std::string& where_;
};

// The class named by the file: image_processor_type, else feature_extractor_type with
// FeatureExtractor read as ImageProcessor (as AutoImageProcessor does).
ImageProcessorType read_type(const Reader& r) {
  std::string field = "image_processor_type";
  const json* v = r.find("image_processor_type");
  if (!v) {
    field = "feature_extractor_type";
    v = r.find("feature_extractor_type");
  }
  if (!v)
    r.error("image_processor_type",
            "missing (neither image_processor_type nor feature_extractor_type is set); supported: "
            "CLIPImageProcessor, SiglipImageProcessor");
  if (!v->is_string()) r.error(field, "must be a string, got ", v->type_name());
  std::string name = v->get<std::string>();
  const std::string fe = "FeatureExtractor";
  if (field == "feature_extractor_type" && name.size() >= fe.size() &&
      name.compare(name.size() - fe.size(), fe.size(), fe) == 0)
    name = name.substr(0, name.size() - fe.size()) + "ImageProcessor";
  if (name == "CLIPImageProcessor") return ImageProcessorType::kClip;
  if (name == "SiglipImageProcessor") return ImageProcessorType::kSiglip;
  if (name == "CLIPImageProcessorFast" || name == "SiglipImageProcessorFast")
    r.error(field, "'", name,
            "' (torchvision resize) is not supported: ressa reproduces the PIL-based ",
            name.substr(0, name.size() - 4), ", which transformers loads for this file with use_fast=False; "
            "supported: CLIPImageProcessor, SiglipImageProcessor");
  if (name == "LlavaOnevisionImageProcessor" || name == "LlavaNextImageProcessor")
    r.error(field, "'", name,
            "' is not supported: for one image it returns several crops (anyres: the resized image "
            "plus tiles picked from image_grid_pinpoints), not one resized image; supported: "
            "CLIPImageProcessor, SiglipImageProcessor");
  r.error(field, "'", name, "' is not supported; supported: CLIPImageProcessor, SiglipImageProcessor");
}

// `size` (CLIP: get_size_dict(size, default_to_square=False); SigLIP: the same in preprocess,
// then size["height"], size["width"]).
void read_size(const Reader& r, ImageProcessorConfig& c, bool square_shortest_edge) {
  const json* v = r.find("size");
  if (!v) return;  // the class default, already in c
  const bool clip = c.type == ImageProcessorType::kClip;
  const char* supported = clip ? "supported: {\"shortest_edge\": N}, {\"height\": H, \"width\": W}, N "
                                 "(= shortest_edge), [H, W]"
                               : "supported: {\"height\": H, \"width\": W}, [H, W]";
  int shortest = 0, h = 0, w = 0;
  if (v->is_number()) {
    shortest = r.to_side(*v, "size");
  } else if (v->is_array()) {
    if (v->size() != 2) r.error("size", "a list must hold [height, width], got ", v->size(), " values");
    h = r.to_side((*v)[0], "size[0]");
    w = r.to_side((*v)[1], "size[1]");
  } else if (v->is_object()) {
    std::set<std::string> keys;
    for (auto it = v->begin(); it != v->end(); ++it) keys.insert(it.key());
    if (keys == std::set<std::string>{"shortest_edge"}) {
      shortest = r.to_side((*v)["shortest_edge"], "size.shortest_edge");
    } else if (keys == std::set<std::string>{"height", "width"}) {
      h = r.to_side((*v)["height"], "size.height");
      w = r.to_side((*v)["width"], "size.width");
    } else {
      r.error("size", "keys {", join(keys), "} are not supported; ", supported);
    }
  } else {
    r.error("size", "must be an object, a list or an integer, got ", v->type_name());
  }
  if (shortest > 0 && !clip)
    r.error("size", "SiglipImageProcessor resizes to {\"height\", \"width\"} only (transformers fails "
                    "on a shortest edge); ", supported);
  if (shortest > 0 && square_shortest_edge) h = w = shortest, shortest = 0;  // Kosmos-2's use_square_size
  c.shortest_edge = shortest;
  c.resize_height = h;
  c.resize_width = w;
}

// `crop_size` (get_size_dict(crop_size, default_to_square=True)).
void read_crop_size(const Reader& r, ImageProcessorConfig& c) {
  const json* v = r.find("crop_size");
  if (!v) return;
  if (v->is_number()) {
    c.crop_height = c.crop_width = r.to_side(*v, "crop_size");
  } else if (v->is_array() && v->size() == 2) {
    c.crop_height = r.to_side((*v)[0], "crop_size[0]");
    c.crop_width = r.to_side((*v)[1], "crop_size[1]");
  } else if (v->is_object()) {
    std::set<std::string> keys;
    for (auto it = v->begin(); it != v->end(); ++it) keys.insert(it.key());
    if (keys != std::set<std::string>{"height", "width"})
      r.error("crop_size", "keys {", join(keys), "} are not supported; supported: {\"height\": H, \"width\": W}, N, [H, W]");
    c.crop_height = r.to_side((*v)["height"], "crop_size.height");
    c.crop_width = r.to_side((*v)["width"], "crop_size.width");
  } else {
    r.error("crop_size", "must be an object {\"height\", \"width\"}, an integer or [H, W], got ",
            v->is_array() ? "a list of " + std::to_string(v->size()) : std::string(v->type_name()));
  }
}

}  // namespace

const char* to_string(ImageProcessorType t) {
  return t == ImageProcessorType::kSiglip ? "SiglipImageProcessor" : "CLIPImageProcessor";
}

ImageProcessorConfig parse_image_processor_config(const std::string& text, const std::string& where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    fail("[ImageProcessor] ", where, ": (file): not valid JSON: ", e.what());
  }
  if (!j.is_object()) fail("[ImageProcessor] ", where, ": (file): top level must be a JSON object");
  const Reader r(j, where);

  ImageProcessorConfig c;
  c.type = read_type(r);
  const bool clip = c.type == ImageProcessorType::kClip;
  const std::set<std::string>& fields = clip ? kClipFields : kSiglipFields;
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!fields.count(it.key()) && !kIgnoredFields.count(it.key()))
      r.error(it.key(), "unknown field for ", to_string(c.type), "; ressa implements: ", join(fields),
              " (and ignores: ", join(kIgnoredFields), ")");

  if (!clip) {  // SiglipImageProcessor's defaults
    c.shortest_edge = 0;
    c.resize_height = c.resize_width = 224;
    c.resample = Resample::kBilinear;
    c.do_center_crop = false;
    c.image_mean = {0.5, 0.5, 0.5};  // IMAGENET_STANDARD_MEAN
    c.image_std = {0.5, 0.5, 0.5};   // IMAGENET_STANDARD_STD
    c.do_convert_rgb = false;        // None in transformers
  }

  r.get_bool("do_resize", c.do_resize);
  bool square = false;
  if (clip) r.get_bool("use_square_size", square);
  read_size(r, c, square);
  if (const json* v = r.find("resample")) {
    const int64_t code = r.to_int(*v, "resample");
    if (code == 2) {
      c.resample = Resample::kBilinear;
    } else if (code == 3) {
      c.resample = Resample::kBicubic;
    } else {
      r.error("resample", "PIL filter ", code,
              " is not supported; supported: 2 (BILINEAR), 3 (BICUBIC) (not 0 NEAREST, 1 LANCZOS, 4 BOX, 5 HAMMING)");
    }
  } else if (r.has("resample")) {
    r.error("resample", "is null; supported: 2 (BILINEAR), 3 (BICUBIC)");
  }
  if (clip) {
    r.get_bool("do_center_crop", c.do_center_crop);
    read_crop_size(r, c);
  } else {
    // SiglipImageProcessor takes no crop arguments: transformers stores and ignores them. A file
    // that asks for a crop is refused rather than silently not cropped.
    bool crop = false;
    r.get_bool("do_center_crop", crop);
    if (crop) r.error("do_center_crop", "true, but SiglipImageProcessor never crops (transformers ignores this field); supported: false");
  }
  r.get_bool("do_rescale", c.do_rescale);
  if (const json* v = r.find("rescale_factor")) c.rescale_factor = r.to_number(*v, "rescale_factor");
  else if (r.has("rescale_factor")) r.error("rescale_factor", "is null; expected a number such as 1/255");
  r.get_bool("do_normalize", c.do_normalize);
  r.get_channels("image_mean", c.image_mean, false);
  r.get_channels("image_std", c.image_std, true);
  if (r.has("do_convert_rgb") && !r.find("do_convert_rgb")) c.do_convert_rgb = false;  // null: HF skips it
  else r.get_bool("do_convert_rgb", c.do_convert_rgb);
  return c;
}

ImageProcessorConfig load_image_processor_config(const std::string& path) {
  if (!std::filesystem::is_regular_file(path)) fail("[ImageProcessor] ", path, ": (file): file not found");
  return parse_image_processor_config(read_file(path), path);
}

ImageProcessor::ImageProcessor(ImageProcessorConfig config, std::string where)
    : config_(std::move(config)), where_(std::move(where)) {}

ImageProcessor ImageProcessor::from_file(const std::string& path) {
  return ImageProcessor(load_image_processor_config(path), path);
}

std::array<int, 2> ImageProcessor::resized_size(int height, int width) const {
  const ImageProcessorConfig& c = config_;
  if (!c.do_resize) return {height, width};
  if (c.shortest_edge <= 0) return {c.resize_height, c.resize_width};
  // transformers' get_resize_output_image_size(default_to_square=False): the short side becomes
  // N and the long side int(N * long / short), a float64 division truncated.
  const bool portrait = width <= height;
  const int64_t short_side = portrait ? width : height, long_side = portrait ? height : width;
  const int64_t n = c.shortest_edge;
  const int64_t new_long = int64_t(double(n * long_side) / double(short_side));
  if (new_long > kMaxResizeDim || new_long * n > kMaxResizePixels)
    fail("[ImageProcessor] ", where_, ": size: resizing a ", width, "x", height, " image to shortest edge ", n,
         " gives ", n, "x", new_long, ", beyond ", kMaxResizeDim, " per side or ", kMaxResizePixels, " pixels");
  return portrait ? std::array<int, 2>{int(new_long), int(n)} : std::array<int, 2>{int(n), int(new_long)};
}

std::array<int, 2> ImageProcessor::output_size(int height, int width) const {
  if (config_.type == ImageProcessorType::kClip && config_.do_center_crop)
    return {config_.crop_height, config_.crop_width};
  return resized_size(height, width);
}

Image center_crop(const Image& img, int crop_h, int crop_w) {
  RESSA_CHECK_ARG(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width) * size_t(img.height) * 3,
                  "[center_crop] inconsistent image ", img.width, "x", img.height);
  RESSA_CHECK_ARG(crop_h > 0 && crop_w > 0 && crop_h <= kMaxImageDim && crop_w <= kMaxImageDim,
                  "[center_crop] crop size ", crop_w, "x", crop_h, " outside 1..", kMaxImageDim);
  // Output (y, x) reads input (y + dy, x + dx): a floor-centred window, or, where the image is
  // smaller than the crop, the image placed ceil((crop - size) / 2) into a zero canvas.
  auto offset = [](int size, int crop) { return size >= crop ? (size - crop) / 2 : -((crop - size + 1) / 2); };
  const int dy = offset(img.height, crop_h), dx = offset(img.width, crop_w);
  Image out;
  out.height = crop_h;
  out.width = crop_w;
  out.rgb.assign(size_t(crop_h) * size_t(crop_w) * 3, 0);
  const int x0 = std::max(0, -dx), x1 = std::min(crop_w, img.width - dx);  // columns with data
  for (int y = 0; y < crop_h; ++y) {
    const int sy = y + dy;
    if (sy < 0 || sy >= img.height || x0 >= x1) continue;
    std::copy_n(&img.rgb[(size_t(sy) * size_t(img.width) + size_t(x0 + dx)) * 3], size_t(x1 - x0) * 3,
                &out.rgb[(size_t(y) * size_t(crop_w) + size_t(x0)) * 3]);
  }
  return out;
}

Image ImageProcessor::resize_and_crop(const Image& img) const {
  RESSA_CHECK_ARG(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width) * size_t(img.height) * 3,
                  "[ImageProcessor] inconsistent image ", img.width, "x", img.height, " with ", img.rgb.size(),
                  " bytes");
  const auto [h, w] = resized_size(img.height, img.width);
  Image out = resize_pil(img, w, h, config_.resample);  // a copy when the size is unchanged
  if (config_.type == ImageProcessorType::kClip && config_.do_center_crop)
    out = center_crop(out, config_.crop_height, config_.crop_width);
  return out;
}

PixelValues PixelNorm::to_pixels(const Image& img) const {
  RESSA_CHECK_ARG(img.width > 0 && img.height > 0 && img.rgb.size() == size_t(img.width) * size_t(img.height) * 3,
                  "[ImageProcessor] inconsistent image ", img.width, "x", img.height, " with ", img.rgb.size(),
                  " bytes");
  PixelValues out;
  out.height = img.height;
  out.width = img.width;
  const size_t plane = size_t(img.height) * size_t(img.width);
  out.pixels.resize(3 * plane);
  for (int ch = 0; ch < 3; ++ch) {
    float* dst = &out.pixels[size_t(ch) * plane];
    for (size_t i = 0; i < plane; ++i) dst[i] = apply(img.rgb[i * 3 + size_t(ch)], ch);
  }
  return out;
}

PixelNorm ImageProcessor::pixel_norm() const {
  const ImageProcessorConfig& c = config_;
  PixelNorm n;
  n.do_rescale = c.do_rescale;
  n.rescale_factor = c.rescale_factor;
  n.do_normalize = c.do_normalize;
  // numpy's normalize casts mean and std to the image's float32 and computes in float32.
  for (int ch = 0; ch < 3; ++ch) n.mean[ch] = float(c.image_mean[ch]), n.std[ch] = float(c.image_std[ch]);
  return n;
}

PixelValues ImageProcessor::to_pixels(const Image& img) const { return pixel_norm().to_pixels(img); }

PixelValues ImageProcessor::process(const Image& img) const { return to_pixels(resize_and_crop(img)); }

}  // namespace ressa::data
