// prune_tensor_file(): safetensors in, prune_matrix, safetensors out (the prune-tensor command).
#include "ressa/prune/prune_tensor.h"

#include <cstring>

#include "ressa/core/error.h"
#include "ressa/io/safetensors.h"

namespace ressa::prune {

namespace {

// Copies tensor `name` of a 2-D float dtype out of `file` as a float32 CPU tensor [rows, cols].
torch::Tensor load_matrix(const io::SafetensorsFile& file, const std::string& name) {
  const io::TensorInfo* info = file.find(name);
  if (!info) {
    std::string found;
    for (const auto& t : file.tensors()) found += (found.empty() ? "" : ", ") + t.name;
    fail("[prune_tensor] ", file.path(), ": no tensor '", name, "' (found: ", found.empty() ? "none" : found, ")");
  }
  torch::ScalarType st;
  switch (info->dtype) {
    case io::DType::F64: st = torch::kDouble; break;
    case io::DType::F32: st = torch::kFloat; break;
    case io::DType::F16: st = torch::kHalf; break;
    case io::DType::BF16: st = torch::kBFloat16; break;
    default:
      fail("[prune_tensor] ", file.path(), ": tensor '", name, "' must be F64, F32, F16 or BF16, got ",
           io::to_string(info->dtype));
  }
  RESSA_CHECK(info->shape.size() == 2, "[prune_tensor] ", file.path(), ": tensor '", name,
              "' must be 2-D, got shape ", c10::IntArrayRef(info->shape));
  auto t = torch::empty(info->shape, torch::TensorOptions().dtype(st));
  if (info->nbytes() > 0) std::memcpy(t.data_ptr(), file.data(*info), info->nbytes());  // mmap may be unaligned
  t = t.to(torch::kFloat);
  RESSA_CHECK(t.isfinite().all().item<bool>(), "[prune_tensor] ", file.path(), ": tensor '", name,
              "' contains NaN or Inf");
  return t;
}

}  // namespace

void prune_tensor_file(const std::string& weight_path, const std::string& inputs_path, Method method,
                       const SparsityPattern& pattern, const MethodOptions& opts, const std::string& out_path) {
  opts.validate();
  torch::Tensor w, x;
  {
    auto wf = io::SafetensorsFile::open(weight_path);
    w = load_matrix(wf, "weight");  // [d_out, d_in]
    auto xf = io::SafetensorsFile::open(inputs_path);
    x = load_matrix(xf, "inputs");  // [n, d_in]
  }
  const int64_t d_in = w.size(1);
  RESSA_CHECK_ARG(x.size(1) == d_in, "[prune_tensor] ", inputs_path, ": inputs ", x.sizes(),
                  " must have as many columns as ", weight_path, ": weight ", w.sizes(), " (", d_in, ")");
  RESSA_CHECK_ARG(x.size(0) > 0, "[prune_tensor] ", inputs_path, ": inputs ", x.sizes(),
                  " has no rows (empty calibration); need n >= 1");
  RESSA_CHECK_ARG(!pattern.is_nm() || d_in % pattern.m == 0, "[prune_tensor] pattern ", pattern.to_string(),
                  " needs d_in divisible by ", pattern.m, ", but ", weight_path, ": weight is ", w.sizes());
  RESSA_CHECK_ARG(d_in > 0, "[prune_tensor] ", weight_path, ": weight ", w.sizes(), " has no columns");

  const bool need_h = method == Method::SparseGPT || (method == Method::DSnoT && opts.dsnot_base == Method::SparseGPT);
  LayerStats stats(d_in, need_h);
  stats.add_batch(x);
  auto res = prune_matrix(w, stats, method, pattern, opts);

  auto weight_out = res.weight.to(torch::kCPU, torch::kFloat).contiguous();
  auto mask_out = res.mask.to(torch::kCPU, torch::kUInt8).contiguous();
  std::vector<int64_t> shape(weight_out.sizes().begin(), weight_out.sizes().end());
  io::write_safetensors(out_path,
                        {{"weight", io::DType::F32, shape, weight_out.data_ptr()},
                         {"mask", io::DType::U8, shape, mask_out.data_ptr()}},
                        {{"method", to_string(method)}, {"pattern", pattern.to_string()}});
}

}  // namespace ressa::prune
