// Loading and saving Llava model directories with full validation before any copy.
#include "ressa/model/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/core/hash.h"
#include "ressa/io/config.h"
#include "ressa/io/file_pages.h"
#include "ressa/io/model_files.h"
#include "ressa/sparse/formats.h"

namespace fs = std::filesystem;

namespace ressa::model {

namespace {
torch::ScalarType scalar_type_of(const io::TensorInfo& info) {
  using io::DType;
  switch (info.dtype) {
    case DType::F64: return torch::kFloat64;
    case DType::F32: return torch::kFloat32;
    case DType::F16: return torch::kFloat16;
    case DType::BF16: return torch::kBFloat16;
    case DType::I64: return torch::kInt64;
    case DType::I32: return torch::kInt32;
    case DType::I16: return torch::kInt16;
    case DType::I8: return torch::kInt8;
    case DType::U8: return torch::kUInt8;
    case DType::BOOL: return torch::kBool;
    default: fail("[to_torch] unsupported dtype for ", info.name);
  }
}

// A copy of the tensor's bytes in its stored dtype.
torch::Tensor stored_bytes(const io::TensorInfo& info, const uint8_t* data) {
  std::vector<int64_t> shape(info.shape.begin(), info.shape.end());
  auto t = torch::empty(shape, torch::TensorOptions().dtype(scalar_type_of(info)));
  if (t.numel() > 0) std::memcpy(t.data_ptr(), data, info.end - info.begin);
  return t;
}
}  // namespace

torch::Tensor to_torch(const io::TensorInfo& info, const uint8_t* data) {
  auto t = stored_bytes(info, data);
  if (t.is_floating_point()) return t.to(torch::kFloat32);
  if (t.scalar_type() == torch::kBool) return t.to(torch::kUInt8);
  return t;
}

bool is_ignorable_key(const std::string& key) {
  auto ends_with = [&](const std::string& s) {
    return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
  };
  // SigLIP's pooling head (vision_use_head): LLaVA reads hidden states, never the pooled output,
  // so transformers' LLaVA builds the head but never runs it. Not read, not written back.
  const bool siglip_head = key.rfind("vision_tower.vision_model.head.", 0) == 0;
  return siglip_head || ends_with(".position_ids") || ends_with(".rotary_emb.inv_freq");
}

std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors(Llava& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  const bool tied = model->language_model->tied;
  for (auto& p : model->named_parameters(true)) {
    const auto& k = p.key();
    if (k.find("lora_A") != std::string::npos || k.find("lora_B") != std::string::npos) continue;
    if (tied && k == "language_model.lm_head.weight") continue;  // stored once, as embed_tokens
    out.emplace_back(k, p.value());
  }
  return out;
}

SparseFormat parse_sparse_format(const std::string& s) {
  if (s == "bitmask") return SparseFormat::Bitmask;
  if (s == "nm") return SparseFormat::NM;
  fail_arg("[parse_sparse_format] unknown sparse format '", s, "' (expected bitmask or nm)");
}

std::string to_string(SparseFormat f) { return f == SparseFormat::Bitmask ? "bitmask" : "nm"; }

torch::Tensor mapped_tensor(const std::shared_ptr<const io::Checkpoint>& ckpt, const std::string& name) {
  const io::TensorInfo& info = ckpt->info(name);
  const uint8_t* p = ckpt->data(name);
  if (reinterpret_cast<uintptr_t>(p) % io::dtype_size(info.dtype) != 0) return {};
  std::vector<int64_t> shape(info.shape.begin(), info.shape.end());
  return torch::from_blob(const_cast<uint8_t*>(p), shape, [keep = ckpt](void*) {},
                          torch::TensorOptions().dtype(scalar_type_of(info)));
}

namespace {

// The dtype a model's tensors are written in: the checkpoint's (config.json torch_dtype, kept as
// read), so an fp16 or bf16 model stays one; pruned zeros are exact in every dtype.
struct StoredDtype {
  torch::ScalarType torch;
  io::DType file;
  int bytes;
};
StoredDtype stored_dtype(const io::LlavaConfig& c) {
  if (c.torch_dtype == "float16") return {torch::kHalf, io::DType::F16, 2};
  if (c.torch_dtype == "bfloat16") return {torch::kBFloat16, io::DType::BF16, 2};
  return {torch::kFloat32, io::DType::F32, 4};
}

// compressed-tensors' names for the layouts (CompressionFormat values). N:M other than 2:4 has
// no compressed-tensors name; the tensors are the same as sparse-24-bitmask's.
constexpr const char* kCtBitmask = "sparse-bitmask";
constexpr const char* kCt24 = "sparse-24-bitmask";
constexpr const char* kNmBitmask = "ressa-nm-bitmask";

// What config.json says about compressed weights.
struct Compression {
  SparseFormat format = SparseFormat::Bitmask;
  int n = 0, m = 0;
  std::vector<std::string> targets;  // Linear names (no ".weight")
  std::string values;                // ressa_sparse.values ("f32", "bf16", "f16"; "" when not recorded)
};

// Reads the compression record of <dir>/config.json; nullopt for a dense checkpoint.
std::optional<Compression> read_compression(const std::string& dir) {
  const std::string path = (fs::path(dir) / "config.json").string();
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    fail("[load_model] ", path, ": not valid JSON: ", e.what());
  }
  if (!j.contains("quantization_config")) return std::nullopt;
  const auto& q = j["quantization_config"];
  const std::string where = "[load_model] " + path + ": quantization_config";
  RESSA_CHECK(q.is_object(), where, " must be an object");
  RESSA_CHECK(q.value("quant_method", std::string()) == "compressed-tensors", where,
              ".quant_method must be \"compressed-tensors\", got ", q.value("quant_method", nlohmann::json()).dump());
  RESSA_CHECK(!q.contains("config_groups") || q["config_groups"].empty(), where,
              ": quantized weights (config_groups) are not supported, only sparsity_config");
  if (!q.contains("sparsity_config") || q["sparsity_config"].is_null()) return std::nullopt;
  const auto& sc = q["sparsity_config"];
  RESSA_CHECK(sc.is_object() && sc.contains("format") && sc["format"].is_string(), where,
              ".sparsity_config needs a string \"format\"");
  const std::string fmt = sc["format"];
  if (fmt == "dense") return std::nullopt;
  Compression c;
  if (fmt == kCtBitmask) {
    c.format = SparseFormat::Bitmask;
  } else if (fmt == kCt24 || fmt == kNmBitmask) {
    c.format = SparseFormat::NM;
    c.n = 2, c.m = 4;
    if (j.contains("ressa_sparse") && j["ressa_sparse"].is_object()) {
      c.n = j["ressa_sparse"].value("n", 0);
      c.m = j["ressa_sparse"].value("m", 0);
    } else {
      RESSA_CHECK(fmt == kCt24, "[load_model] ", path, ": format ", fmt, " needs \"ressa_sparse\": {\"n\", \"m\"}");
    }
    RESSA_CHECK(c.n > 0 && c.m > c.n && c.m <= 256, "[load_model] ", path, ": ressa_sparse n:m must be 0 < n < m <= 256, got ",
                c.n, ":", c.m);
    RESSA_CHECK(fmt != kCt24 || (c.n == 2 && c.m == 4), "[load_model] ", path, ": format ", fmt,
                " is 2:4 but ressa_sparse says ", c.n, ":", c.m);
  } else {
    fail(where, ".sparsity_config.format '", fmt, "' is not supported (expected ", kCtBitmask, ", ", kCt24, " or ",
         kNmBitmask, ")");
  }
  if (j.contains("ressa_sparse") && j["ressa_sparse"].is_object() && j["ressa_sparse"].contains("values")) {
    const auto& v = j["ressa_sparse"]["values"];
    RESSA_CHECK(v.is_string() && (v == "f32" || v == "bf16" || v == "f16"), "[load_model] ", path,
                ": ressa_sparse.values must be \"f32\", \"bf16\" or \"f16\", got ", v.dump());
    c.values = v.get<std::string>();
  }
  RESSA_CHECK(sc.contains("targets") && sc["targets"].is_array(), where, ".sparsity_config.targets must be a list of Linear names");
  for (const auto& t : sc["targets"]) {
    RESSA_CHECK(t.is_string(), where, ".sparsity_config.targets holds a non-string ", t.dump());
    c.targets.push_back(t.get<std::string>());
  }
  return c;
}

// The tensors of layer `name` stored in `fmt` (compressed-tensors names).
std::vector<std::string> compressed_keys(const std::string& name, SparseFormat fmt) {
  std::vector<std::string> k = {name + ".shape", name + ".compressed", name + ".bitmask"};
  if (fmt == SparseFormat::Bitmask) k.push_back(name + ".row_offsets");
  return k;
}

sparse::NamedArray to_named_array(const io::Checkpoint& ckpt, const std::string& key) {
  const auto& info = ckpt.info(key);
  const uint8_t* p = ckpt.data(key);
  return {key, io::to_string(info.dtype), info.shape, std::vector<uint8_t>(p, p + info.nbytes())};
}

// bitmask U8 [rows, ceil(cols/8)] (LSB first) -> bool mask [rows, cols], true = stored.
torch::Tensor unpack_bitmask(const sparse::NamedArray& bm, int64_t rows, int64_t cols) {
  const int64_t stride = (cols + 7) / 8;
  auto bytes = torch::from_blob(const_cast<uint8_t*>(bm.bytes.data()), {rows, stride, 1}, torch::kUInt8).to(torch::kInt32);
  auto shifts = torch::arange(8, torch::kInt32).view({1, 1, 8});
  auto bits = bytes.bitwise_right_shift(shifts).bitwise_and(1);  // [rows, stride, 8]
  return bits.reshape({rows, stride * 8}).narrow(1, 0, cols).to(torch::kBool).contiguous();
}

std::map<std::string, Linear> linears_by_name(Llava& model) {
  auto lins = model->linears();
  return {lins.begin(), lins.end()};
}

// The layers config.json lists as stored compressed, by weight key ("<layer>.weight").
struct CompressedLayers {
  std::optional<Compression> comp;
  std::map<std::string, Linear> layer;       // weight key -> layer
  std::map<std::string, std::string> name;   // weight key -> layer name
  bool contains(const std::string& key) const { return layer.count(key) > 0; }
};

CompressedLayers find_compressed_layers(const std::string& dir, Llava& model) {
  CompressedLayers out;
  out.comp = read_compression(dir);
  if (!out.comp) return out;
  auto by_name = linears_by_name(model);
  for (const auto& t : out.comp->targets) {
    auto it = by_name.find(t);
    RESSA_CHECK(it != by_name.end(), "[load_model] ", dir, "/config.json: sparsity_config target '", t,
                "' names no Linear layer of the model");
    RESSA_CHECK(!out.contains(t + ".weight"), "[load_model] ", dir, "/config.json: sparsity_config target '", t,
                "' listed twice");
    out.layer.emplace(t + ".weight", it->second);
    out.name[t + ".weight"] = t;
  }
  return out;
}

// Every tensor the model expects is in the checkpoint (compressed layers: their compressed
// tensors instead of the weight), and nothing else is.
void check_tensor_names(const std::string& dir, const io::Checkpoint& ckpt, Llava& model,
                        const std::vector<std::pair<std::string, torch::Tensor>>& expected, const CompressedLayers& cl) {
  std::set<std::string> expected_names;
  std::string missing;
  for (auto& [name, t] : expected) {
    if (cl.contains(name)) {
      RESSA_CHECK(!ckpt.contains(name), "[load_model] ", ckpt.file_of(name), ": ", name,
                  " is stored dense but config.json lists its layer as compressed");
      for (const auto& k : compressed_keys(cl.name.at(name), cl.comp->format)) {
        expected_names.insert(k);
        if (!ckpt.contains(k)) missing += (missing.empty() ? "" : ", ") + k;
      }
      continue;
    }
    expected_names.insert(name);
    if (!ckpt.contains(name)) missing += (missing.empty() ? "" : ", ") + name;
  }
  RESSA_CHECK(missing.empty(), "[load_model] ", dir, ": missing tensors: ", missing);
  std::string unexpected;
  for (auto& name : ckpt.names())
    if (!expected_names.count(name) && !is_ignorable_key(name) &&
        !(model->language_model->tied && name == "language_model.lm_head.weight"))  // tied: a copy of embed_tokens
      unexpected += (unexpected.empty() ? "" : ", ") + name;
  RESSA_CHECK(unexpected.empty(), "[load_model] ", dir, ": unexpected tensors: ", unexpected);
}

// One compressed layer as read: the matrix for the kernels and, unless the dense copy is
// released, the stored bitmask as the layer's mask.
struct CompressedRead {
  std::shared_ptr<SparseWeight> weight;
  torch::Tensor mask;
};

// Decodes and checks each compressed layer (format, value type, shape against config.json, finite values).
std::map<std::string, CompressedRead> read_compressed_layers(const std::string& dir, const io::Checkpoint& ckpt,
                                                             const std::vector<std::pair<std::string, torch::Tensor>>& expected,
                                                             const CompressedLayers& cl, bool with_masks) {
  std::map<std::string, CompressedRead> out;
  for (auto& [name, t] : expected) {
    if (!cl.contains(name)) continue;
    const auto& comp = *cl.comp;
    const std::string& lname = cl.name.at(name);
    std::vector<sparse::NamedArray> arrays;
    for (const auto& k : compressed_keys(lname, comp.format)) arrays.push_back(to_named_array(ckpt, k));
    auto sw = std::make_shared<SparseWeight>();
    try {
      if (comp.format == SparseFormat::Bitmask)
        sw->matrix = sparse::BitmaskMatrix::from_named_arrays(arrays, lname);
      else
        sw->matrix = sparse::NMMatrix::from_named_arrays(arrays, lname, comp.n, comp.m);
    } catch (const std::exception& e) {
      fail("[load_model] ", ckpt.file_of(lname + ".compressed"), ": layer ", lname, ": ", e.what());
    }
    const std::string stored = sparse::to_string(sw->value_type());
    RESSA_CHECK(comp.values.empty() || comp.values == stored, "[load_model] ", ckpt.file_of(lname + ".compressed"),
                ": layer ", lname, " stores ", stored, " values but config.json ressa_sparse.values says ", comp.values);
    RESSA_CHECK(sw->rows() == t.size(0) && sw->cols() == t.size(1), "[load_model] ", ckpt.file_of(lname + ".shape"),
                ": layer ", lname, " has compressed shape [", sw->rows(), ", ", sw->cols(), "], config.json expects ",
                t.sizes());
    // Checked on the stored values (the dense form adds only zeros), so without a dense copy.
    const bool finite = std::visit([](const auto& mat) { return mat.all_finite(); }, sw->matrix);
    RESSA_CHECK(finite, "[load_model] ", dir, ": compressed layer ", lname, " contains NaN or Inf");
    out[name] = {sw, with_masks ? unpack_bitmask(arrays[2], sw->rows(), sw->cols()) : torch::Tensor()};
  }
  return out;
}

// The dense tensors' dtypes and shapes, all checked before anything is copied.
void check_dense_tensors(const io::Checkpoint& ckpt, const std::vector<std::pair<std::string, torch::Tensor>>& expected,
                         const CompressedLayers& cl) {
  for (auto& [name, t] : expected) {
    if (cl.contains(name)) continue;
    const auto& info = ckpt.info(name);
    RESSA_CHECK(info.dtype == io::DType::F32 || info.dtype == io::DType::F16 || info.dtype == io::DType::BF16 ||
                    info.dtype == io::DType::F64,
                "[load_model] ", ckpt.file_of(name), ": tensor ", name, " has dtype ", io::to_string(info.dtype),
                ", expected a float dtype");
    std::vector<int64_t> want(t.sizes().begin(), t.sizes().end());
    RESSA_CHECK(info.shape == want, "[load_model] ", ckpt.file_of(name), ": tensor ", name, " has shape ",
                torch::IntArrayRef(info.shape), ", config.json expects ", t.sizes());
  }
}

// Copies every tensor into the model (compressed layers: their dense form, unless released).
// Whether every value of a float tensor in the file is finite, read from its bits in place: no
// temporary the size of the tensor (torch::isfinite on a 7B model's weights would allocate, and
// the allocator keep, gigabytes of them).
bool all_finite(const io::TensorInfo& info, const uint8_t* p) {
  const size_t n = info.end - info.begin;
  auto scan = [&](auto word, auto exponent) {
    using W = decltype(word);
    for (size_t i = 0; i + sizeof(W) <= n; i += sizeof(W)) {
      W w;
      std::memcpy(&w, p + i, sizeof(W));
      if ((w & exponent) == exponent) return false;  // exponent all ones: Inf or NaN
    }
    return true;
  };
  switch (info.dtype) {
    case io::DType::F16: return scan(uint16_t{}, uint16_t{0x7C00});
    case io::DType::BF16: return scan(uint16_t{}, uint16_t{0x7F80});
    case io::DType::F32: return scan(uint32_t{}, uint32_t{0x7F800000u});
    case io::DType::F64: return scan(uint64_t{}, uint64_t{0x7FF0000000000000ull});
    default: return true;
  }
}

// A copy of a 16-bit checkpoint tensor in its dtype (LoadOptions::stored_dtype); undefined for
// other dtypes (they are widened to fp32 as without the option).
torch::Tensor stored_copy(const io::TensorInfo& info, const uint8_t* data) {
  if (info.dtype != io::DType::F16 && info.dtype != io::DType::BF16) return {};
  return stored_bytes(info, data);
}

// Linear weights named in `linear_weights` become views of the mapping (`mapped` non-null) or
// copies in their stored dtype (`stored`); everything else is copied into the model's fp32 tensors.
void copy_tensors(const std::shared_ptr<const io::Checkpoint>& mapped, bool stored, const io::Checkpoint& ckpt,
                  const std::vector<std::pair<std::string, torch::Tensor>>& expected,
                  const std::map<std::string, CompressedRead>& compressed, const std::set<std::string>& linear_weights,
                  bool released) {
  torch::NoGradGuard ng;
  for (auto& [name, t] : expected) {
    if (auto it = compressed.find(name); it != compressed.end()) {
      if (!released) t.copy_(it->second.weight->to_dense());
      continue;
    }
    const io::TensorInfo& info = ckpt.info(name);
    if ((mapped || stored) && linear_weights.count(name)) {
      auto kept = mapped ? mapped_tensor(mapped, name) : stored_copy(info, ckpt.data(name));
      if (kept.defined()) {
        RESSA_CHECK(all_finite(info, ckpt.data(name)), "[load_model] ", ckpt.file_of(name), ": tensor ", name,
                    " contains NaN or Inf");
        t.set_data(kept);  // frees the uninitialised fp32 weight the model was built with
        io::release_file_pages(ckpt.data(name), info.nbytes());  // the check read every page
        continue;
      }
    }
    auto src = to_torch(info, ckpt.data(name));
    // float64 values can overflow float32: check after the conversion.
    RESSA_CHECK(info.dtype == io::DType::F64 ? torch::isfinite(src).all().item<bool>() : all_finite(info, ckpt.data(name)),
                "[load_model] ", ckpt.file_of(name), ": tensor ", name, " contains NaN or Inf");
    t.copy_(src);
    io::release_file_pages(ckpt.data(name), info.nbytes());  // read once: a mapped view faults it back
  }
}

// <dir>/masks.safetensors, checked against the weights: layer name -> mask (empty without the file).
std::map<std::string, torch::Tensor> read_masks(const std::string& dir, Llava& model) {
  std::map<std::string, torch::Tensor> out;
  const auto mask_path = fs::path(dir) / "masks.safetensors";
  if (!fs::exists(mask_path)) return out;
  auto mf = io::SafetensorsFile::open(mask_path.string());
  auto by_name = linears_by_name(model);
  for (const auto& info : mf.tensors()) {
    const std::string suffix = ".mask";
    RESSA_CHECK(info.name.size() > suffix.size() && info.name.substr(info.name.size() - suffix.size()) == suffix,
                "[load_model] ", mask_path.string(), ": unexpected tensor ", info.name, " (expected <linear>.mask)");
    const std::string lname = info.name.substr(0, info.name.size() - suffix.size());
    auto it = by_name.find(lname);
    RESSA_CHECK(it != by_name.end(), "[load_model] ", mask_path.string(), ": mask ", info.name,
                " names no Linear layer of the model");
    RESSA_CHECK(info.dtype == io::DType::U8 || info.dtype == io::DType::BOOL, "[load_model] ", mask_path.string(),
                ": mask ", info.name, " must be U8 or BOOL, got ", io::to_string(info.dtype));
    auto& w = it->second->weight;
    std::vector<int64_t> want(w.sizes().begin(), w.sizes().end());
    RESSA_CHECK(info.shape == want, "[load_model] ", mask_path.string(), ": mask ", info.name, " has shape ",
                torch::IntArrayRef(info.shape), ", weight is ", w.sizes());
    auto m = to_torch(info, mf.data(info));
    RESSA_CHECK(m.le(1).all().item<bool>(), "[load_model] ", mask_path.string(), ": mask ", info.name,
                " holds values other than 0/1");
    auto kept = m.to(torch::kBool);
    RESSA_CHECK(!w.detach().masked_select(kept.logical_not()).ne(0).any().item<bool>(), "[load_model] ", dir,
                ": weight ", lname, " is non-zero where masks.safetensors says pruned");
    out[lname] = kept;
  }
  return out;
}

}  // namespace

LoadedModel load_model(const std::string& dir, const torch::Device& device, const LoadOptions& opts) {
  RESSA_CHECK(fs::is_directory(dir), "[load_model] ", dir, ": model directory not found");
  auto cfg = io::load_config((fs::path(dir) / "config.json").string());
  const auto shared_ckpt = std::make_shared<const io::Checkpoint>(io::Checkpoint::open_dir(dir));
  const io::Checkpoint& ckpt = *shared_ckpt;
  cfg.key_layout = ckpt.layout();  // written back the same way
  LoadedModel out;
  out.dir = dir;
  {
    SkipWeightInit no_init;  // every weight is read below (docs/architecture.md, "Memory when loading")
    out.model = Llava(cfg);
  }
  auto expected = checkpoint_tensors(out.model);
  auto cl = find_compressed_layers(dir, out.model);
  if (cl.comp) {
    out.compression = to_string(cl.comp->format);
    out.n = cl.comp->n;
    out.m = cl.comp->m;
    out.compressed_layers = cl.comp->targets;
  }
  // Inference only: free the compressed layers' dense weights now, before their compressed
  // tensors are read, so the dense copies never coexist with them (the peak memory).
  const bool release = opts.release_dense && device.is_cpu();
  if (release)
    for (auto& [key, lin] : cl.layer) lin->release_dense();

  // Validate every name, shape and dtype before copying anything.
  check_tensor_names(dir, ckpt, out.model, expected, cl);
  const auto compressed = read_compressed_layers(dir, ckpt, expected, cl, !release);
  check_dense_tensors(ckpt, expected, cl);
  std::set<std::string> linear_weights;  // read in place or kept in their stored dtype
  for (auto& [lname, lin] : linears_by_name(out.model)) linear_weights.insert(lname + ".weight");
  const bool map = opts.map_weights && device.is_cpu();
  copy_tensors(map ? shared_ckpt : nullptr, opts.stored_dtype, ckpt, expected, compressed, linear_weights, release);
  auto masks = read_masks(dir, out.model);
  out.has_masks = !masks.empty() || fs::exists(fs::path(dir) / "masks.safetensors") || !compressed.empty();

  out.model->to(device);
  for (auto& [key, c] : compressed)  // masks.safetensors, when present, says it first
    if (c.mask.defined()) masks.emplace(cl.name.at(key), c.mask);
  auto by_name = linears_by_name(out.model);
  for (auto& [lname, m] : masks) by_name.at(lname)->set_mask(m);
  // The kernels are CPU-only; set_compressed ties each compressed copy to the weight as it is now.
  if (device.is_cpu())
    for (auto& [key, c] : compressed) cl.layer.at(key)->set_compressed(c.weight);
  return out;
}

void save_model(const std::string& dir, Llava& model, const std::map<std::string, std::string>& metadata) {
  fs::create_directories(dir);
  const std::string& dtype = model->config.torch_dtype;
  const StoredDtype stored = stored_dtype(model->config);
  const auto st = stored.torch;
  const io::DType file_dtype = stored.file;
  io::save_config(dir, model->config);
  std::vector<torch::Tensor> keep;  // owns contiguous CPU copies while writing
  std::vector<io::TensorView> views;
  for (auto& [name, t] : checkpoint_tensors(model)) {
    auto c = t.detach().to(torch::kCPU, st).contiguous();
    RESSA_CHECK(torch::isfinite(c).all().item<bool>(), "[save_model] ", dir, ": refusing to write tensor ", name,
                " with NaN or Inf values", st == torch::kFloat32 ? std::string() : " (in " + dtype + ")");
    io::release_file_pages(c.data_ptr(), c.nbytes());  // a mapped weight is read again when written
    keep.push_back(c);
    views.push_back({name, file_dtype, std::vector<int64_t>(c.sizes().begin(), c.sizes().end()), c.data_ptr()});
  }
  auto md = metadata;
  md["format"] = "pt";
  for (auto& v : views) v.name = io::to_file_name(v.name, model->config.key_layout);
  io::write_checkpoint_dir(dir, views, md);
  std::vector<torch::Tensor> mkeep;
  std::vector<io::TensorView> mviews;
  for (auto& [name, lin] : model->linears()) {
    if (!lin->mask().defined()) continue;
    // A bool tensor's bytes are the U8 0/1 values: written without a copy (a streamed prune's
    // masks are mapped, and a 7B model's are 6.5 GB).
    auto m = lin->mask().to(torch::kCPU, torch::kBool).contiguous();
    mkeep.push_back(m);
    mviews.push_back({name + ".mask", io::DType::U8, std::vector<int64_t>(m.sizes().begin(), m.sizes().end()), m.data_ptr()});
  }
  const auto mask_path = fs::path(dir) / "masks.safetensors";
  if (!mviews.empty()) io::write_safetensors(mask_path.string(), mviews, {{"format", "ressa-masks"}});
  else if (fs::exists(mask_path)) fs::remove(mask_path);
}

namespace {
// The source weights are finite (load_model checks), so a non-finite stored value is one that
// overflowed the value type (f16 stops at 65504): an error naming the layer, before writing.
template <class Matrix>
void check_values_fit(const Matrix& mat, const std::string& layer, sparse::ValueType values) {
  if (!mat.all_finite())
    fail_arg("[export] layer ", layer, ": a kept weight is beyond what --dtype ", sparse::to_string(values),
             " holds (f16: |w| <= 65504); export it with --dtype f32 or bf16");
}
}  // namespace

ExportReport export_compressed(const std::string& model_dir, const std::string& out_dir, const ExportOptions& o) {
  const bool nm = o.format == SparseFormat::NM;
  if (nm)
    RESSA_CHECK_ARG(o.n > 0 && o.m > o.n && o.m <= 256, "[export] N:M needs 0 < N < M <= 256, got ", o.n, ":", o.m);
  RESSA_CHECK_ARG(!out_dir.empty(), "[export] --out must not be empty");
  RESSA_CHECK_ARG(fs::is_directory(model_dir), "[export] --model ", model_dir, ": model directory not found");
  RESSA_CHECK_ARG(fs::weakly_canonical(model_dir) != fs::weakly_canonical(out_dir), "[export] --out ", out_dir,
                  " is the model directory --model; choose another output directory");
  const auto tok_path = fs::path(model_dir) / "tokenizer.json";
  RESSA_CHECK(fs::exists(tok_path), "[export] ", tok_path.string(), ": not found (a model directory has tokenizer.json)");
  auto lm = load_model(model_dir, torch::kCPU);

  // Which layers to compress: those pruning left a mask on; a model without masks (pruned by
  // another tool) falls back to the tower-block Linears that hold zeros.
  std::vector<std::pair<std::string, Linear>> targets;
  for (auto& [name, lin] : lm.model->linears())
    if (lin->mask().defined()) targets.emplace_back(name, lin);
  if (targets.empty()) {
    for (auto group : {lm.model->vision_block_linears(), lm.model->language_block_linears()})
      for (auto& [name, lin] : group)
        if (lin->weight.eq(0).any().item<bool>()) targets.emplace_back(name, lin);
  }
  RESSA_CHECK(!targets.empty(), "[export] ", model_dir,
              ": no pruned layers (no masks and no zero weights in the tower blocks); prune the model first");

  // Compress everything first, so an N:M violation stops the export before anything is written.
  const StoredDtype stored = stored_dtype(lm.model->config);
  ExportReport rep;
  std::map<std::string, std::vector<sparse::NamedArray>> arrays;  // weight key -> tensors
  for (auto& [name, lin] : targets) {
    auto w = lin->weight.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    const int64_t rows = w.size(0), cols = w.size(1);
    if (nm) {
      sparse::NMMatrix mat;
      try {
        mat = sparse::NMMatrix::from_dense(w.data_ptr<float>(), rows, cols, o.n, o.m, o.values);
      } catch (const std::invalid_argument& e) {
        fail_arg("[export] --format nm: layer ", name, " [", rows, ", ", cols, "] is not ", o.n, ":", o.m,
                 " sparse (", e.what(), "); export it with --format bitmask, or prune with --pattern ", o.n, ":", o.m);
      }
      check_values_fit(mat, name, o.values);
      arrays[name + ".weight"] = mat.to_named_arrays(name + ".weight");
    } else {
      const auto mat = sparse::BitmaskMatrix::from_dense(w.data_ptr<float>(), rows, cols, o.values);
      check_values_fit(mat, name, o.values);
      arrays[name + ".weight"] = mat.to_named_arrays(name + ".weight");
    }
    rep.compressed.push_back(name);
    rep.compressed_dense_bytes += static_cast<uint64_t>(w.numel()) * stored.bytes;
    for (const auto& a : arrays[name + ".weight"]) rep.compressed_bytes += a.bytes.size();
  }
  std::set<std::string> compressed_set(rep.compressed.begin(), rep.compressed.end());
  for (auto& [name, lin] : lm.model->linears())
    if (!compressed_set.count(name)) rep.dense.push_back(name);

  std::vector<torch::Tensor> keep;  // owns contiguous copies while writing
  std::vector<io::TensorView> views;
  int64_t zeros = 0, numel = 0;
  for (auto& [name, t] : checkpoint_tensors(lm.model)) {
    zeros += t.detach().eq(0).sum().item<int64_t>();
    numel += t.numel();
    rep.dense_tensor_bytes += static_cast<uint64_t>(t.numel()) * stored.bytes;
    if (auto it = arrays.find(name); it != arrays.end()) {
      for (const auto& a : it->second)
        views.push_back({a.name, io::parse_dtype(a.dtype), a.shape, a.bytes.data()});
      continue;
    }
    // Dense parts stay in the checkpoint's dtype (an fp16 model's norms and embeddings stay fp16).
    auto c = t.detach().to(torch::kCPU, stored.torch).contiguous();
    keep.push_back(c);
    views.push_back({name, stored.file, std::vector<int64_t>(c.sizes().begin(), c.sizes().end()), c.data_ptr()});
  }
  rep.global_sparsity = numel > 0 ? double(zeros) / double(numel) : 0.0;

  // config.json: the model config plus the compressed-tensors record (quantization_config with a
  // sparsity_config; targets are explicit layer names) and ressa's own (n, m in ressa's
  // "n zeros in every m" convention; compressed-tensors' sparsity_structure counts kept weights).
  auto cfg = nlohmann::json::parse(io::config_to_json(lm.model->config));
  const bool ct24 = nm && o.n == 2 && o.m == 4;
  const std::string fmt = !nm ? kCtBitmask : ct24 ? kCt24 : kNmBitmask;
  nlohmann::json sc = {{"format", fmt},
                       {"global_sparsity", rep.global_sparsity},
                       {"sparsity_structure", nm ? std::to_string(o.m - o.n) + ":" + std::to_string(o.m) : "unstructured"},
                       {"targets", rep.compressed},
                       {"ignore", rep.dense},
                       {"registry_requires_subclass", false}};
  cfg["quantization_config"] = {{"quant_method", "compressed-tensors"}, {"format", fmt}, {"sparsity_config", sc}};
  cfg["ressa_sparse"] = {{"format", to_string(o.format)}, {"n", nm ? o.n : 0}, {"m", nm ? o.m : 0},
                         {"values", sparse::to_string(o.values)}};

  write_output_dir(out_dir, [&](const std::string& staging) {
    io::save_config(staging, lm.model->config);  // config.json (replaced below) + preprocessor_config.json
    write_file_atomic((fs::path(staging) / "config.json").string(), cfg.dump(2) + "\n");
    io::copy_model_files(model_dir, staging);
    if (fs::exists(fs::path(model_dir) / "prune.json"))
      fs::copy_file(fs::path(model_dir) / "prune.json", fs::path(staging) / "prune.json", fs::copy_options::overwrite_existing);
    for (auto& v : views) v.name = io::to_file_name(v.name, lm.model->config.key_layout);
    io::write_checkpoint_dir(staging, views,
                             {{"format", "pt"}, {"ressa.command", "export"}, {"ressa.sparse_format", to_string(o.format)}});
    for (const auto& e : fs::directory_iterator(staging)) {
      const auto fname = e.path().filename().string();
      if (fname.rfind("model", 0) == 0 && e.path().extension() == ".safetensors") rep.file_bytes += fs::file_size(e.path());
    }
  });
  return rep;
}

std::string model_fingerprint(const std::string& dir) {
  auto ckpt = io::Checkpoint::open_dir(dir);
  Fnv1a h;
  for (auto& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    h.add(name);
    h.add(ckpt.data(name), size_t(info.end - info.begin));
    io::release_file_pages(ckpt.data(name), info.nbytes());
  }
  return h.hex();
}

}  // namespace ressa::model
