// Adapter placement, dense-teacher weights and the sparsity-preserving merge (see adapters.h).
#include "ressa/repair/adapters.h"

#include <map>
#include <memory>
#include <sstream>

#include "ressa/core/error.h"
#include "ressa/io/file_pages.h"
#include "ressa/io/safetensors.h"
#include "ressa/model/checkpoint.h"

namespace ressa::repair {

Targets parse_targets(const std::string& csv) {
  Targets t{false, false, false};
  std::stringstream ss(csv);
  std::string item;
  int n = 0;
  while (std::getline(ss, item, ',')) {
    if (item == "vision") t.vision = true;
    else if (item == "language") t.language = true;
    else if (item == "projector") t.projector = true;
    else if (item == "all") t = Targets{};
    else fail_arg("[parse_targets] --targets: unknown target '", item, "' in '", csv,
                  "' (expected a comma-separated subset of vision,language,projector)");
    ++n;
  }
  RESSA_CHECK_ARG(n > 0, "[parse_targets] --targets is empty (expected a subset of vision,language,projector)");
  return t;
}

std::string to_string(const Targets& t) {
  std::string s;
  for (auto [on, name] : {std::pair{t.vision, "vision"}, {t.language, "language"}, {t.projector, "projector"}})
    if (on) s += (s.empty() ? "" : ",") + std::string(name);
  return s;
}

void AdapterOptions::validate() const {
  RESSA_CHECK_ARG(kind != model::AdapterKind::None, "[repair] --adapter must be sparse-lora, lora or masked-ft");
  RESSA_CHECK_ARG(targets.vision || targets.language || targets.projector, "[repair] --targets selects nothing");
  RESSA_CHECK_ARG(rank_vision > 0, "[repair] --rank-vision must be > 0, got ", rank_vision);
  RESSA_CHECK_ARG(rank_language > 0, "[repair] --rank-language must be > 0, got ", rank_language);
  RESSA_CHECK_ARG(rank_projector > 0, "[repair] --rank-projector must be > 0, got ", rank_projector);
  RESSA_CHECK_ARG(alpha > 0 && std::isfinite(alpha), "[repair] --alpha must be > 0, got ", alpha);
}

std::vector<AdaptedLinear> attach_adapters(model::Llava& net, const AdapterOptions& o) {
  o.validate();
  for (auto& p : net->parameters()) p.set_requires_grad(false);
  std::vector<AdaptedLinear> out;
  auto add = [&](const std::string& name, model::Linear lin, const std::string& tower, int64_t rank) {
    lin->attach_adapter(o.kind, rank, o.alpha);
    if (o.kind == model::AdapterKind::MaskedFt && !lin->teacher_weight().defined())
      lin->set_teacher_weight(lin->weight.detach().clone());
    out.push_back({name, lin, tower});
  };
  if (o.targets.vision)
    for (auto& [name, lin] : net->vision_block_linears())
      if (lin->mask().defined()) add(name, lin, "vision", o.rank_vision);
  if (o.targets.projector) {
    auto& pr = net->multi_modal_projector;
    add("multi_modal_projector.linear_1", pr->linear_1, "projector", o.rank_projector);
    add("multi_modal_projector.linear_2", pr->linear_2, "projector", o.rank_projector);
  }
  if (o.targets.language)
    for (auto& [name, lin] : net->language_block_linears())
      if (lin->mask().defined()) add(name, lin, "language", o.rank_language);
  return out;
}

std::vector<torch::Tensor> trainable_parameters(const std::vector<AdaptedLinear>& adapted) {
  std::vector<torch::Tensor> out;
  for (auto& a : adapted)
    for (auto& t : a.lin->trainable_parameters()) out.push_back(t);
  return out;
}

TeacherInfo attach_dense_teacher(model::Llava& net, const std::string& dense_dir, const std::string& pruned_dir,
                                 const torch::Device& device) {
  // The dense weights are read in place from the mapped checkpoint in its stored dtype on CPU (no
  // second fp32 copy of the model: docs/architecture.md "Memory when repairing").
  const auto ckpt = std::make_shared<const io::Checkpoint>(io::Checkpoint::open_dir(dense_dir));
  std::map<std::string, model::Linear> linear_of;
  for (auto& [name, lin] : net->linears()) linear_of.emplace(name + ".weight", lin);
  TeacherInfo info;
  torch::NoGradGuard ng;
  for (auto& [name, t] : model::checkpoint_tensors(net)) {
    RESSA_CHECK_ARG(ckpt->contains(name), "[repair] --dense ", dense_dir, " lacks tensor ", name, " of --pruned ",
                    pruned_dir, " (not the same architecture)");
    const auto& ti = ckpt->info(name);
    std::vector<int64_t> want(t.sizes().begin(), t.sizes().end());
    RESSA_CHECK_ARG(ti.shape == want, "[repair] tensor ", name, " has shape ", torch::IntArrayRef(ti.shape), " in --dense ",
                    dense_dir, " but ", t.sizes(), " in --pruned ", pruned_dir);
    auto w0 = model::mapped_tensor(ckpt, name);
    if (!w0.defined()) w0 = model::to_torch(ti, ckpt->data(name));  // not aligned for a view: a copy
    const bool same = torch::equal(w0.to(t.device(), t.scalar_type()), t.detach());
    io::release_file_pages(ckpt->data(name), ti.nbytes());
    if (t.device().is_cpu()) io::release_file_pages(t.data_ptr(), t.nbytes());  // the student's, when mapped
    if (same) continue;
    auto it = linear_of.find(name);
    RESSA_CHECK_ARG(it != linear_of.end() && it->second->mask().defined(), "[repair] tensor ", name,
                    " differs between --dense ", dense_dir, " and --pruned ", pruned_dir,
                    "; pruning changes only the weights of the Linears it masks, so the teacher would not be the "
                    "dense model");
    it->second->set_teacher_weight(device.is_cpu() ? w0 : w0.to(device));
    info.dense_linears += 1;
    info.dense_bytes += w0.numel() * static_cast<int64_t>(w0.element_size());
  }
  return info;
}

MergeReport merge_adapters(model::Llava& net, const std::vector<AdaptedLinear>& adapted, model::AdapterKind kind) {
  MergeReport rep;
  torch::NoGradGuard ng;
  // The teacher is done with; each merged weight is a new tensor, so the pages of the weight it
  // replaces (read in place from the pruned checkpoint) are dropped as it goes.
  for (auto& [name, lin] : net->linears()) lin->drop_teacher();
  io::release_all_file_pages();
  for (auto& a : adapted) {
    model::Linear lin = a.lin;
    const void* before = lin->weight.data_ptr();
    const auto before_bytes = lin->weight.nbytes();
    lin->merge_adapter();
    io::release_file_pages(before, before_bytes);
    lin->weight.set_requires_grad(false);
    rep.layers += 1;
    if (!lin->mask().defined()) continue;
    auto pruned = lin->mask().logical_not();
    const int64_t n_pruned = pruned.sum().item<int64_t>();
    const int64_t nonzero_pruned = lin->weight.ne(0).logical_and(pruned).sum().item<int64_t>();
    rep.pruned_positions += n_pruned;
    if (kind == model::AdapterKind::Lora) {
      rep.filled_pruned_positions += nonzero_pruned;
      if (nonzero_pruned > 0) lin->clear_mask();  // no longer sparse: no mask to record
      continue;
    }
    RESSA_CHECK(nonzero_pruned == 0, "[merge_adapters] ", a.name, ": ", nonzero_pruned, " of ", n_pruned,
                " pruned positions are non-zero after merging the ", model::to_string(kind),
                " adapter (expected 0); refusing to write a model that lost its sparsity");
  }
  return rep;
}

}  // namespace ressa::repair
