// Sparsity per targeted layer, per tower, overall and whole-model (see sparsity.h).
#include "ressa/eval/sparsity.h"

#include <map>

#include "ressa/io/file_pages.h"

namespace ressa::eval {
namespace {
// Whether every group of m consecutive weights in each row holds >= n zeros.
bool nm_ok(const torch::Tensor& w, int n, int m) {
  if (w.size(1) % m != 0) return false;
  auto zeros = w.eq(0).view({w.size(0), w.size(1) / m, m}).sum(-1);
  return zeros.ge(n).all().item<bool>();
}
}  // namespace

SparsityReport sparsity_report(model::Llava& net, int n, int m) {
  torch::NoGradGuard ng;
  SparsityReport r;
  r.nm_checked = n > 0 && m > 0;
  r.nm_valid = r.nm_checked;
  int64_t vz = 0, vt = 0, lz = 0, lt = 0;
  auto visit = [&](const std::vector<std::pair<std::string, model::Linear>>& lins, int64_t& z, int64_t& t) {
    for (auto& [name, lin] : lins) {
      auto w = lin->dense_weight_copy().detach();  // decompressed when the dense copy was released
      const int64_t zeros = w.eq(0).sum().item<int64_t>();
      io::release_file_pages(w.data_ptr(), w.nbytes());  // mapped weights stay on disk (file_pages.h)
      LayerSparsity ls{name, static_cast<double>(zeros) / w.numel(), w.numel(), true};
      if (r.nm_checked && zeros > 0) {
        ls.nm_valid = nm_ok(w, n, m);
        r.nm_valid = r.nm_valid && ls.nm_valid;
      }
      r.layers.push_back(ls);
      z += zeros;
      t += w.numel();
    }
  };
  visit(net->vision_block_linears(), vz, vt);
  visit(net->language_block_linears(), lz, lt);
  r.vision = vt ? static_cast<double>(vz) / vt : 0;
  r.language = lt ? static_cast<double>(lz) / lt : 0;
  r.overall = (vt + lt) ? static_cast<double>(vz + lz) / (vt + lt) : 0;
  int64_t mz = 0, mt = 0;
  std::map<const void*, const model::LinearImpl*> released;  // placeholder weight -> its layer
  for (auto& [name, lin] : net->linears())
    if (lin->dense_released()) released[lin->weight.unsafeGetTensorImpl()] = lin.get();
  for (auto& p : net->parameters()) {
    auto it = released.find(p.unsafeGetTensorImpl());
    mz += (it == released.end() ? p.detach() : it->second->dense_weight_copy()).eq(0).sum().item<int64_t>();
    io::release_file_pages(p.data_ptr(), p.nbytes());
    mt += p.numel();
  }
  r.model = mt ? static_cast<double>(mz) / mt : 0;
  return r;
}

}  // namespace ressa::eval
