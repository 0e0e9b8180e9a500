// Loading and saving Llava model directories with full validation before any copy.
#include "ressa/model/checkpoint.h"

#include <cstring>
#include <filesystem>
#include <set>

#include "ressa/core/error.h"
#include "ressa/io/config.h"

namespace fs = std::filesystem;

namespace ressa::model {

torch::Tensor to_torch(const io::TensorInfo& info, const uint8_t* data) {
  using io::DType;
  torch::ScalarType st;
  switch (info.dtype) {
    case DType::F64: st = torch::kFloat64; break;
    case DType::F32: st = torch::kFloat32; break;
    case DType::F16: st = torch::kFloat16; break;
    case DType::BF16: st = torch::kBFloat16; break;
    case DType::I64: st = torch::kInt64; break;
    case DType::I32: st = torch::kInt32; break;
    case DType::I16: st = torch::kInt16; break;
    case DType::I8: st = torch::kInt8; break;
    case DType::U8: st = torch::kUInt8; break;
    case DType::BOOL: st = torch::kBool; break;
    default: fail("[to_torch] unsupported dtype for ", info.name);
  }
  std::vector<int64_t> shape(info.shape.begin(), info.shape.end());
  auto t = torch::empty(shape, torch::TensorOptions().dtype(st));
  if (t.numel() > 0) std::memcpy(t.data_ptr(), data, info.end - info.begin);
  if (t.is_floating_point()) return t.to(torch::kFloat32);
  if (st == torch::kBool) return t.to(torch::kUInt8);
  return t;
}

bool is_ignorable_key(const std::string& key) {
  auto ends_with = [&](const std::string& s) {
    return key.size() >= s.size() && key.compare(key.size() - s.size(), s.size(), s) == 0;
  };
  return ends_with(".position_ids") || ends_with(".rotary_emb.inv_freq");
}

std::vector<std::pair<std::string, torch::Tensor>> checkpoint_tensors(Llava& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (auto& p : model->named_parameters(true)) {
    const auto& k = p.key();
    if (k.find("lora_A") != std::string::npos || k.find("lora_B") != std::string::npos) continue;
    out.emplace_back(k, p.value());
  }
  return out;
}

LoadedModel load_model(const std::string& dir, const torch::Device& device) {
  RESSA_CHECK(fs::is_directory(dir), "[load_model] ", dir, ": model directory not found");
  auto cfg = io::load_config((fs::path(dir) / "config.json").string());
  LoadedModel out;
  out.dir = dir;
  out.model = Llava(cfg);
  auto ckpt = io::Checkpoint::open_dir(dir);
  auto expected = checkpoint_tensors(out.model);
  std::set<std::string> expected_names;
  std::string missing;
  for (auto& [name, t] : expected) {
    expected_names.insert(name);
    if (!ckpt.contains(name)) missing += (missing.empty() ? "" : ", ") + name;
  }
  RESSA_CHECK(missing.empty(), "[load_model] ", dir, ": missing tensors: ", missing);
  std::string unexpected;
  for (auto& name : ckpt.names())
    if (!expected_names.count(name) && !is_ignorable_key(name)) unexpected += (unexpected.empty() ? "" : ", ") + name;
  RESSA_CHECK(unexpected.empty(), "[load_model] ", dir, ": unexpected tensors: ", unexpected);
  // Validate every shape and dtype before copying anything.
  for (auto& [name, t] : expected) {
    const auto& info = ckpt.info(name);
    RESSA_CHECK(info.dtype == io::DType::F32 || info.dtype == io::DType::F16 || info.dtype == io::DType::BF16 ||
                    info.dtype == io::DType::F64,
                "[load_model] ", ckpt.file_of(name), ": tensor ", name, " has dtype ", io::to_string(info.dtype),
                ", expected a float dtype");
    std::vector<int64_t> want(t.sizes().begin(), t.sizes().end());
    RESSA_CHECK(info.shape == want, "[load_model] ", ckpt.file_of(name), ": tensor ", name, " has shape ",
                torch::IntArrayRef(info.shape), ", config.json expects ", t.sizes());
  }
  {
    torch::NoGradGuard ng;
    for (auto& [name, t] : expected) {
      auto src = to_torch(ckpt.info(name), ckpt.data(name));
      RESSA_CHECK(torch::isfinite(src).all().item<bool>(), "[load_model] ", ckpt.file_of(name), ": tensor ", name,
                  " contains NaN or Inf");
      t.copy_(src);
    }
  }
  const auto mask_path = fs::path(dir) / "masks.safetensors";
  if (fs::exists(mask_path)) {
    auto mf = io::SafetensorsFile::open(mask_path.string());
    auto lins = out.model->linears();
    std::map<std::string, Linear> by_name(lins.begin(), lins.end());
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
      auto m = to_torch(info, mf.data(info)).to(torch::kFloat32);
      RESSA_CHECK(m.le(1).all().item<bool>(), "[load_model] ", mask_path.string(), ": mask ", info.name,
                  " holds values other than 0/1");
      RESSA_CHECK(w.detach().mul(1 - m).eq(0).all().item<bool>(), "[load_model] ", dir, ": weight ", lname,
                  " is non-zero where masks.safetensors says pruned");
      it->second->mask = m;
    }
    out.has_masks = true;
  }
  out.model->to(device);
  for (auto& [name, lin] : out.model->linears())
    if (lin->mask.defined()) lin->mask = lin->mask.to(device);
  return out;
}

void save_model(const std::string& dir, Llava& model, const std::map<std::string, std::string>& metadata) {
  fs::create_directories(dir);
  io::save_config(dir, model->config);
  std::vector<torch::Tensor> keep;  // owns contiguous CPU copies while writing
  std::vector<io::TensorView> views;
  for (auto& [name, t] : checkpoint_tensors(model)) {
    auto c = t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
    RESSA_CHECK(torch::isfinite(c).all().item<bool>(), "[save_model] ", dir, ": refusing to write tensor ", name,
                " with NaN or Inf values");
    keep.push_back(c);
    views.push_back({name, io::DType::F32, std::vector<int64_t>(c.sizes().begin(), c.sizes().end()), c.data_ptr()});
  }
  auto md = metadata;
  md["format"] = "pt";
  io::write_checkpoint_dir(dir, views, md);
  std::vector<torch::Tensor> mkeep;
  std::vector<io::TensorView> mviews;
  for (auto& [name, lin] : model->linears()) {
    if (!lin->mask.defined()) continue;
    auto m = lin->mask.detach().to(torch::kCPU).to(torch::kUInt8).contiguous();
    mkeep.push_back(m);
    mviews.push_back({name + ".mask", io::DType::U8, std::vector<int64_t>(m.sizes().begin(), m.sizes().end()), m.data_ptr()});
  }
  const auto mask_path = fs::path(dir) / "masks.safetensors";
  if (!mviews.empty()) io::write_safetensors(mask_path.string(), mviews, {{"format", "ressa-masks"}});
  else if (fs::exists(mask_path)) fs::remove(mask_path);
}

std::string model_fingerprint(const std::string& dir) {
  auto ckpt = io::Checkpoint::open_dir(dir);
  uint64_t h = 1469598103934665603ull;
  for (auto& name : ckpt.names()) {
    const auto& info = ckpt.info(name);
    const uint8_t* p = ckpt.data(name);
    for (char c : name) h = (h ^ static_cast<uint8_t>(c)) * 1099511628211ull;
    for (uint64_t i = 0; i < info.end - info.begin; ++i) h = (h ^ p[i]) * 1099511628211ull;
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

}  // namespace ressa::model
