// Tests for src/ressa/repair/{objective,adapters,repair} and `ressa repair`: the sparse merge keeps
// every zero (N:M included), SparseLoRA gradients see only kept positions, the KD term and its
// answer-position masking, the teacher is exactly the dense model, provenance checks, resume after
// an interruption equals an uninterrupted run, and the lora / masked-ft baselines.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "ressa/core/atomic_file.h"
#include "ressa/data/shapes.h"
#include "ressa/io/safetensors.h"
#include "ressa/model/checkpoint.h"
#include "ressa/prune/mask.h"
#include "ressa/repair/repair.h"
#include "ressa/train/vqa_data.h"

namespace fs = std::filesystem;
using namespace ressa;
using model::AdapterKind;

namespace {

// A tiny dataset, a random-init tiny dense model and a magnitude-pruned copy, built once.
struct Fixture {
  std::string root, data, dense, pruned_nm, pruned_un;
  io::Tokenizer tok;
  io::LlavaConfig cfg;
};

// Prunes every block Linear of the model in `src` by |W| (2:4 or 50% per row) into `dst`.
void write_pruned(const Fixture& f, const std::string& dst, bool nm) {
  auto lm = model::load_model(f.dense, torch::kCPU);
  torch::NoGradGuard ng;
  auto lins = lm.model->vision_block_linears();
  for (auto& l : lm.model->language_block_linears()) lins.push_back(l);
  for (auto& [name, lin] : lins) {
    auto score = lin->weight.abs();
    auto m = (nm ? prune::nm_mask(score, 2, 4) : prune::unstructured_mask(score, 0.5, prune::Granularity::Row))
                 .to(torch::kFloat32);
    lin->weight.mul_(m);
    lin->set_mask(m);
  }
  model::save_model(dst, lm.model);
  f.tok.save(dst + "/tokenizer.json");
  nlohmann::json rec = {{"method", "magnitude"},
                        {"pattern", nm ? "2:4" : "0.5"},
                        {"dense_model", {{"path", f.dense}, {"fingerprint", model::model_fingerprint(f.dense)}}}};
  write_file_atomic(dst + "/prune.json", rec.dump());
}

const Fixture& fixture() {
  static Fixture* f = [] {
    auto* f = new Fixture;
    f->root = (fs::temp_directory_path() / ("ressa_test_repair_" + std::to_string(getpid()))).string();
    fs::remove_all(f->root);
    f->data = f->root + "/data";
    data::generate_shapes(f->data, data::ShapesOptions{3, 64, 16, 16, 32, 1});
    f->tok = train::build_tokenizer(f->data, {"train", "val", "test"});
    f->cfg = io::preset_config("tiny");
    f->cfg.text.vocab_size = f->tok.vocab_size();
    f->cfg.image_token_index = f->tok.image_id();
    torch::manual_seed(11);
    model::Llava net(f->cfg);
    f->dense = f->root + "/dense";
    model::save_model(f->dense, net);
    f->tok.save(f->dense + "/tokenizer.json");
    f->pruned_nm = f->root + "/pruned24";
    f->pruned_un = f->root + "/pruned50";
    write_pruned(*f, f->pruned_nm, true);
    write_pruned(*f, f->pruned_un, false);
    return f;
  }();
  return *f;
}

struct Env : ::testing::Environment {
  void SetUp() override { torch::set_num_threads(1); }
  void TearDown() override { fs::remove_all(fs::temp_directory_path() / ("ressa_test_repair_" + std::to_string(getpid()))); }
};
const auto* env = ::testing::AddGlobalTestEnvironment(new Env);

// Random keep-mask [out,in] float: "2:4"-style N:M or an unstructured ratio.
torch::Tensor random_mask(int64_t out, int64_t in, int n, int m, double ratio) {
  auto score = torch::rand({out, in});
  return (n > 0 ? prune::nm_mask(score, n, m) : prune::unstructured_mask(score, ratio, prune::Granularity::Row))
      .to(torch::kFloat32);
}

// A masked Linear with a SparseLoRA (or other) adapter whose B is random, so s·B·A ≠ 0.
model::Linear masked_linear(int64_t in, int64_t out, const torch::Tensor& mask, AdapterKind kind, int64_t rank) {
  model::Linear lin(in, out, true);
  torch::NoGradGuard ng;
  lin->weight.mul_(mask);
  lin->set_mask(mask);
  lin->attach_adapter(kind, rank, 16.0);
  if (lin->lora_B().defined()) lin->lora_B().normal_(0, 0.5);
  return lin;
}

repair::RepairOptions e2e_options(const std::string& pruned, const std::string& out) {
  const auto& f = fixture();
  repair::RepairOptions o;
  o.dense_dir = f.dense;
  o.pruned_dir = pruned;
  o.data_dir = f.data;
  o.out_dir = out;
  o.loop.steps = 6;
  o.loop.batch = 8;
  o.loop.warmup = 2;
  o.loop.lr = 1e-2;
  o.loop.checkpoint_every = 2;
  o.val_limit = 8;
  return o;
}

std::map<std::string, torch::Tensor> read_weights(const std::string& dir) {
  auto ck = io::Checkpoint::open_dir(dir);
  std::map<std::string, torch::Tensor> out;
  for (auto& n : ck.names()) out[n] = model::to_torch(ck.info(n), ck.data(n));
  return out;
}

// Expects the weights of the model directories a and b to agree within 1e-5; returns how far a's
// moved from `start`'s (the largest change of any weight).
double expect_same_weights(const std::string& a, const std::string& b, const std::string& start) {
  auto wa = read_weights(a), wb = read_weights(b), w0 = read_weights(start);
  double moved = 0;
  for (auto& [n, w] : wa) {
    EXPECT_TRUE(torch::allclose(w, wb[n], 0, 1e-5)) << n << " " << (w - wb[n]).abs().max().item<double>();
    moved = std::max(moved, (w - w0[n]).abs().max().item<double>());
  }
  return moved;
}

template <typename E>
std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const E& e) {
    return e.what();
  }
  return "<no exception>";
}

}  // namespace

// ---- merge ----------------------------------------------------------------------------------

TEST(RepairMerge, SparseLoraMergeKeepsEveryZeroAndNM) {
  torch::manual_seed(1);
  struct Case { int n, m; double ratio; };
  for (auto c : {Case{2, 4, 0}, Case{4, 8, 0}, Case{1, 4, 0}, Case{0, 0, 0.5}, Case{0, 0, 0.7}}) {
    auto mask = random_mask(24, 32, c.n, c.m, c.ratio);
    auto lin = masked_linear(32, 24, mask, AdapterKind::SparseLora, 4);
    auto expect = (lin->weight + lin->lora_scale() * lin->lora_B().matmul(lin->lora_A())) * mask;
    auto merged = lin->merged_weight();
    EXPECT_TRUE(merged.eq(0).logical_and(mask.eq(0)).equal(mask.eq(0))) << c.n << ":" << c.m << " " << c.ratio;
    EXPECT_TRUE(torch::allclose(merged, expect, 1e-6, 1e-6));
    EXPECT_EQ(merged.ne(0).logical_and(mask.eq(1)).sum().item<int64_t>(), mask.sum().item<int64_t>());
    if (c.n > 0) { EXPECT_TRUE(prune::is_nm_valid(merged, c.n, c.m)); }
    // The merged layer computes what the adapted layer computed.
    auto x = torch::randn({5, 32});
    auto y = lin->forward(x).detach();
    lin->merge_adapter();
    EXPECT_TRUE(torch::allclose(lin->forward(x), y, 1e-5, 1e-5));
    EXPECT_TRUE(lin->weight.eq(0).equal(mask.eq(0)));
  }
}

TEST(RepairMerge, ModelMergeKeepsZerosLoraFillsThem) {
  const auto& f = fixture();
  for (auto kind : {AdapterKind::SparseLora, AdapterKind::Lora, AdapterKind::MaskedFt}) {
    auto lm = model::load_model(f.pruned_nm, torch::kCPU);
    std::map<std::string, torch::Tensor> before;
    for (auto& [n, l] : lm.model->linears()) before[n] = l->weight.detach().clone();
    repair::AdapterOptions ao;
    ao.kind = kind;
    torch::manual_seed(2);
    auto adapted = repair::attach_adapters(lm.model, ao);
    ASSERT_EQ(adapted.size(), lm.model->vision_block_linears().size() + lm.model->language_block_linears().size() + 2);
    {
      torch::NoGradGuard ng;  // simulate training: random B (adapters) or random weights (masked-ft)
      for (auto& a : adapted) {
        if (kind == AdapterKind::MaskedFt) a.lin->weight.add_(torch::randn_like(a.lin->weight));
        else a.lin->lora_B().normal_(0, 0.1);
      }
    }
    auto rep = repair::merge_adapters(lm.model, adapted, kind);
    EXPECT_GT(rep.pruned_positions, 0);
    for (auto& a : adapted) {
      auto& w = a.lin->weight;
      if (a.tower == "projector") {
        EXPECT_FALSE(w.equal(before[a.name])) << a.name;  // the projector adapter merges too
        continue;
      }
      auto pruned = before[a.name].eq(0);
      if (kind == AdapterKind::Lora) {
        EXPECT_FALSE(a.lin->mask().defined());
        continue;
      }
      EXPECT_TRUE(w.eq(0).equal(pruned)) << a.name;
      EXPECT_TRUE(prune::is_nm_valid(w, 2, 4));
      EXPECT_TRUE(a.lin->mask().defined());
    }
    if (kind == AdapterKind::Lora) EXPECT_EQ(rep.filled_pruned_positions, rep.pruned_positions);
    else EXPECT_EQ(rep.filled_pruned_positions, 0);
  }
}

TEST(RepairMerge, MergeRefusesLostSparsity) {
  const auto& f = fixture();
  auto lm = model::load_model(f.pruned_nm, torch::kCPU);
  repair::AdapterOptions ao;
  ao.targets = repair::parse_targets("language");
  // Adapters whose merge adds a dense update (plain LoRA) merged as if they were SparseLoRA: the
  // check must catch the filled pruned positions instead of writing a model that lost its sparsity.
  ao.kind = AdapterKind::Lora;
  auto adapted = repair::attach_adapters(lm.model, ao);
  {
    torch::NoGradGuard ng;
    adapted[0].lin->lora_B().normal_();
  }
  auto msg = error_of<std::runtime_error>([&] { repair::merge_adapters(lm.model, adapted, AdapterKind::SparseLora); });
  EXPECT_NE(msg.find("[merge_adapters]"), std::string::npos) << msg;
  EXPECT_NE(msg.find(adapted[0].name), std::string::npos) << msg;
}

// ---- gradients ------------------------------------------------------------------------------

TEST(RepairGrad, SparseLoraGradientsSeeOnlyKeptPositions) {
  torch::manual_seed(3);
  auto mask = random_mask(12, 16, 2, 4, 0);
  auto lin = masked_linear(16, 12, mask, AdapterKind::SparseLora, 3);
  auto x = torch::randn({7, 16});
  auto g = torch::randn({7, 12});
  (lin->forward(x) * g).sum().backward();
  // dL/dW_eff = gᵀx; the update s·B·A enters only through M, so the gradient of the product is
  // s·(gᵀx ⊙ M): grad_B = s·(G⊙M)·Aᵀ, grad_A = s·Bᵀ·(G⊙M).
  auto G = g.t().matmul(x);
  const double s = lin->lora_scale();
  auto gm = G * mask;
  EXPECT_TRUE(torch::allclose(lin->lora_B().grad(), s * gm.matmul(lin->lora_A().detach().t()), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(lin->lora_A().grad(), s * lin->lora_B().detach().t().matmul(gm), 1e-5, 1e-5));
  // Without the mask the gradients would differ (the pruned positions would contribute).
  EXPECT_FALSE(torch::allclose(lin->lora_B().grad(), s * G.matmul(lin->lora_A().detach().t()), 1e-3, 1e-3));
  EXPECT_FALSE(lin->weight.requires_grad());
  // Gradient of the effective weight itself: zero at every pruned position.
  auto A = lin->lora_A().detach().clone().requires_grad_(true);
  auto B = lin->lora_B().detach().clone().requires_grad_(true);
  auto ba = B.matmul(A);
  ba.retain_grad();
  auto w = (lin->weight + s * ba) * mask;
  (torch::nn::functional::linear(x, w, lin->bias) * g).sum().backward();
  EXPECT_TRUE(ba.grad().masked_select(mask.eq(0)).eq(0).all().item<bool>());
  EXPECT_TRUE(ba.grad().masked_select(mask.eq(1)).ne(0).any().item<bool>());
}

// The SparseLoRA layer is one autograd node that forms the merged weight again in its backward
// pass; on a frozen fp16 weight (read in place from an fp16 checkpoint) its output and the
// gradients of x, A and B are those of autograd over the same operations on the widened weight.
TEST(RepairGrad, SparseLoraNodeMatchesAutogradOnA16BitWeight) {
  torch::manual_seed(8);
  auto mask = random_mask(12, 16, 2, 4, 0);
  auto lin = masked_linear(16, 12, mask, AdapterKind::SparseLora, 3);
  {
    torch::NoGradGuard ng;
    lin->weight.set_data(lin->weight.to(torch::kHalf));
  }
  ASSERT_EQ(lin->lora_A().scalar_type(), torch::kFloat);
  auto x = torch::randn({2, 7, 16}).requires_grad_(true);
  auto g = torch::randn({2, 7, 12});
  auto y = lin->forward(x);
  (y * g).sum().backward();

  auto xr = x.detach().clone().requires_grad_(true);
  auto A = lin->lora_A().detach().clone().requires_grad_(true);
  auto B = lin->lora_B().detach().clone().requires_grad_(true);
  auto w = (lin->weight.to(torch::kFloat) + lin->lora_scale() * B.matmul(A)) * mask;
  auto yr = torch::nn::functional::linear(xr, w, lin->bias);
  (yr * g).sum().backward();
  EXPECT_TRUE(torch::allclose(y, yr, 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(x.grad(), xr.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(lin->lora_A().grad(), A.grad(), 1e-5, 1e-6));
  EXPECT_TRUE(torch::allclose(lin->lora_B().grad(), B.grad(), 1e-5, 1e-6));
  // Merging rounds to the weight's dtype and keeps every pruned zero.
  lin->merge_adapter();
  EXPECT_EQ(lin->weight.scalar_type(), torch::kHalf);
  EXPECT_TRUE(lin->weight.masked_select(mask.eq(0)).eq(0).all().item<bool>());
  EXPECT_TRUE(torch::equal(lin->weight, w.detach().to(torch::kHalf)));
}

TEST(RepairGrad, MaskedFtGradientAndUpdatesKeepZeros) {
  torch::manual_seed(4);
  auto mask = random_mask(12, 16, 0, 0, 0.6);
  model::Linear lin(16, 12, false);
  {
    torch::NoGradGuard ng;
    lin->weight.mul_(mask);
  }
  lin->set_mask(mask);
  lin->attach_adapter(AdapterKind::MaskedFt, 0, 0);
  torch::optim::AdamW opt({lin->weight}, torch::optim::AdamWOptions(1e-2).weight_decay(0.01));
  for (int i = 0; i < 5; ++i) {
    opt.zero_grad();
    lin->forward(torch::randn({6, 16})).square().sum().backward();
    EXPECT_TRUE(lin->weight.grad().masked_select(mask.eq(0)).eq(0).all().item<bool>());
    opt.step();
  }
  EXPECT_TRUE(lin->weight.detach().masked_select(mask.eq(0)).eq(0).all().item<bool>());
}

// ---- objective ------------------------------------------------------------------------------

namespace {
train::Batch tiny_batch(int64_t n) {
  const auto& f = fixture();
  static train::VqaSet set = train::load_vqa_split(f.data, "train", f.tok, f.cfg);
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < n; ++i) idx.push_back(i);
  return train::make_train_batch(set, idx, f.tok, torch::kCPU);
}
}  // namespace

TEST(RepairObjective, KdIsZeroForEqualLogitsPositiveOtherwise) {
  auto b = tiny_batch(6);
  const int64_t B = b.ids.size(0), T = b.ids.size(1), V = fixture().cfg.text.vocab_size;
  torch::manual_seed(5);
  auto logits = torch::randn({B, T, V});
  for (double temp : {0.5, 1.0, 2.0, 4.0}) {
    EXPECT_NEAR(repair::distillation_kl(logits, logits, b.loss_mask, temp).item<double>(), 0.0, 1e-7);
    auto other = logits + torch::randn({B, T, V});
    EXPECT_GT(repair::distillation_kl(other, logits, b.loss_mask, temp).item<double>(), 1e-3);
  }
  // Golden value at T=2 from a direct float64 computation over the answer positions.
  auto other = logits + torch::randn({B, T, V});
  double sum = 0;
  int64_t k = 0;
  auto lm = b.loss_mask;
  for (int64_t i = 0; i < B; ++i)
    for (int64_t t = 0; t + 1 < T; ++t) {
      if (lm[i][t].item<float>() < 0.5) continue;
      auto pt = torch::softmax(logits[i][t].to(torch::kDouble) / 2, 0);
      auto ps = torch::softmax(other[i][t].to(torch::kDouble) / 2, 0);
      sum += (pt * (pt.log() - ps.log())).sum().item<double>();
      ++k;
    }
  ASSERT_GT(k, B);  // several answer tokens per example (answer + </s>)
  EXPECT_NEAR(repair::distillation_kl(other, logits, lm, 2.0).item<double>(), 4.0 * sum / k, 1e-5);
  // The total is (1-λ)·CE + λ·KD, and its CE equals the training CE.
  auto parts = repair::repair_objective(other, logits, b, 0.3, 2.0);
  EXPECT_NEAR(parts.ce.item<double>(), train::answer_cross_entropy(other, b).item<double>(), 1e-5);
  EXPECT_NEAR(parts.total.item<double>(), 0.7 * parts.ce.item<double>() + 0.3 * parts.kd.item<double>(), 1e-5);
  EXPECT_THROW(repair::repair_objective(other, torch::Tensor(), b, 0.3, 2.0), std::invalid_argument);
  EXPECT_THROW(repair::distillation_kl(other, logits, lm, 0.0), std::invalid_argument);
}

TEST(RepairObjective, PromptAndPaddingLogitsDoNotChangeTheLoss) {
  auto b = tiny_batch(6);
  const int64_t B = b.ids.size(0), T = b.ids.size(1), V = fixture().cfg.text.vocab_size;
  ASSERT_LT(b.attn.sum().item<int64_t>(), B * T);  // the batch has padding
  torch::manual_seed(6);
  auto s = torch::randn({B, T, V}), t = torch::randn({B, T, V});
  auto base = repair::repair_objective(s, t, b, 0.5, 2.0).total.item<double>();
  // Every position whose logits do not predict an answer token: prompt, padding and the last.
  auto other = torch::ones({B, T}, torch::kBool);
  other.slice(1, 0, T - 1).masked_fill_(b.loss_mask.gt(0.5), false);
  auto noise = torch::randn({B, T, V}) * 50 * other.unsqueeze(-1);
  auto s2 = s + noise, t2 = t - noise;
  s2.masked_fill_(other.unsqueeze(-1).logical_and(torch::rand({B, T, V}).lt(0.01)), INFINITY);
  EXPECT_EQ(repair::repair_objective(s2, t2, b, 0.5, 2.0).total.item<double>(), base);
}

TEST(RepairObjective, PaddingTokensDoNotChangeTheModelLoss) {
  const auto& f = fixture();
  auto lm = model::load_model(f.pruned_un, torch::kCPU);
  repair::attach_dense_teacher(lm.model, f.dense, f.pruned_un, torch::kCPU);
  torch::manual_seed(7);
  auto adapted = repair::attach_adapters(lm.model, repair::AdapterOptions{});
  for (auto& a : adapted) a.lin->lora_B().data().normal_(0, 0.1);
  auto b = tiny_batch(6);
  auto base = repair::repair_loss(lm.model, b, 0.5, 2.0);
  auto b2 = b;
  b2.ids = b.ids.clone();
  b2.ids.masked_fill_(b.attn.eq(0), f.tok.token_to_id("circle"));
  auto again = repair::repair_loss(lm.model, b2, 0.5, 2.0);
  EXPECT_NEAR(again.total.item<double>(), base.total.item<double>(), 1e-6);
  EXPECT_GT(base.kd.item<double>(), 0);  // student (pruned + adapters) differs from the dense teacher
}

// Nodes of the graph behind `t` whose name contains `part` (every node counted once).
int64_t count_graph_nodes(const torch::Tensor& t, const std::string& part) {
  std::vector<torch::autograd::Node*> todo{t.grad_fn().get()};
  std::set<torch::autograd::Node*> seen;
  int64_t n = 0;
  while (!todo.empty()) {
    auto* node = todo.back();
    todo.pop_back();
    if (!node || !seen.insert(node).second) continue;
    n += node->name().find(part) != std::string::npos;
    for (const auto& e : node->next_edges()) todo.push_back(e.function.get());
  }
  return n;
}

// --checkpointing: every vision block that reaches the output and every decoder block becomes one
// recorded node holding its input, and backward (recomputing each block) gives the loss and the
// adapters' gradients of the ordinary graph.
TEST(RepairGrad, CheckpointedBlocksGiveTheSameLossAndGradients) {
  const auto& f = fixture();
  auto lm = model::load_model(f.pruned_un, torch::kCPU);
  repair::attach_dense_teacher(lm.model, f.dense, f.pruned_un, torch::kCPU);
  torch::manual_seed(7);
  auto adapted = repair::attach_adapters(lm.model, repair::AdapterOptions{});
  for (auto& a : adapted) a.lin->lora_B().data().normal_(0, 0.1);
  const auto params = repair::trainable_parameters(adapted);
  auto b = tiny_batch(5);
  std::vector<torch::Tensor> want;
  double want_loss = 0;
  int64_t blocks = 0;
  for (bool on : {false, true}) {
    lm.model->set_checkpointing(on);
    for (auto& p : params) p.mutable_grad() = torch::Tensor();
    auto loss = repair::repair_loss(lm.model, b, 0.5, 2.0).total;
    const int64_t nodes = count_graph_nodes(loss, "Checkpointed");
    loss.backward();
    if (!on) {
      EXPECT_EQ(nodes, 0);
      want_loss = loss.item<double>();
      for (auto& p : params) want.push_back(p.grad().clone());
      blocks = lm.model->config.vision_layers_used() + lm.model->config.text.num_hidden_layers;
      continue;
    }
    EXPECT_EQ(nodes, blocks);
    EXPECT_NEAR(loss.item<double>(), want_loss, 1e-6);
    for (size_t i = 0; i < params.size(); ++i) {
      ASSERT_TRUE(params[i].grad().defined()) << i;
      const double scale = want[i].abs().max().item<double>();
      EXPECT_GT(scale, 0) << i;
      EXPECT_LE((params[i].grad() - want[i]).abs().max().item<double>(), 1e-5 * scale + 1e-7) << i;
    }
  }
}

// ---- teacher --------------------------------------------------------------------------------

TEST(RepairTeacher, TeacherForwardIsExactlyTheDenseModel) {
  const auto& f = fixture();
  auto dense = model::load_model(f.dense, torch::kCPU);
  auto b = tiny_batch(4);
  torch::Tensor want;
  {
    torch::NoGradGuard ng;
    want = dense.model->forward(b.pixels, b.ids, b.attn);
  }
  for (auto kind : {AdapterKind::SparseLora, AdapterKind::Lora, AdapterKind::MaskedFt}) {
    auto lm = model::load_model(f.pruned_nm, torch::kCPU);
    auto info = repair::attach_dense_teacher(lm.model, f.dense, f.pruned_nm, torch::kCPU);
    EXPECT_EQ(info.dense_linears,
              int64_t(lm.model->vision_block_linears().size() + lm.model->language_block_linears().size()));
    repair::AdapterOptions ao;
    ao.kind = kind;
    auto adapted = repair::attach_adapters(lm.model, ao);
    {
      torch::NoGradGuard ng;  // perturb every adapter, the projector's included
      for (auto& a : adapted) (kind == AdapterKind::MaskedFt ? a.lin->weight : a.lin->lora_B()).add_(0.3);
    }
    auto got = repair::teacher_logits(lm.model, b);
    EXPECT_TRUE(got.equal(want)) << model::to_string(kind) << " max diff " << (got - want).abs().max().item<double>();
    for (auto& [n, l] : lm.model->linears()) EXPECT_FALSE(l->teacher_mode()) << n;  // switched back off
    torch::NoGradGuard ng;
    EXPECT_FALSE(lm.model->forward(b.pixels, b.ids, b.attn).allclose(want));  // the student is not the teacher
  }
}

TEST(RepairTeacher, ProvenanceAndTensorMismatchesAreUsageErrors) {
  const auto& f = fixture();
  EXPECT_NO_THROW(repair::check_provenance(f.dense, f.pruned_nm));
  // A different dense model (another seed): fingerprint mismatch names both.
  const std::string other = f.root + "/dense_other";
  torch::manual_seed(99);
  model::Llava net(f.cfg);
  model::save_model(other, net);
  auto msg = error_of<std::invalid_argument>([&] { repair::check_provenance(other, f.pruned_nm); });
  EXPECT_NE(msg.find(other), std::string::npos) << msg;
  EXPECT_NE(msg.find(model::model_fingerprint(other)), std::string::npos) << msg;
  EXPECT_NE(msg.find(model::model_fingerprint(f.dense)), std::string::npos) << msg;
  // The teacher loader rejects a dense model whose shared tensors (here the embeddings) differ.
  auto lm = model::load_model(f.pruned_nm, torch::kCPU);
  msg = error_of<std::invalid_argument>([&] { repair::attach_dense_teacher(lm.model, other, f.pruned_nm, torch::kCPU); });
  EXPECT_NE(msg.find("differs"), std::string::npos) << msg;
  // Options.
  EXPECT_THROW(repair::parse_targets("vision,audio"), std::invalid_argument);
  EXPECT_THROW(repair::parse_targets(""), std::invalid_argument);
  EXPECT_EQ(repair::to_string(repair::parse_targets("projector,language")), "language,projector");
  auto o = e2e_options(f.pruned_nm, f.root + "/bad");
  o.kd_weight = 1.5;
  EXPECT_THROW(o.validate(), std::invalid_argument);
  o = e2e_options(f.pruned_nm, f.root + "/bad");
  o.loop.resume = true;
  EXPECT_THROW(o.validate(), std::invalid_argument);  // nothing to resume
  o = e2e_options(f.dense, f.root + "/bad");           // no prune.json / masks
  EXPECT_THROW(o.validate(), std::invalid_argument);
  EXPECT_FALSE(fs::exists(f.root + "/bad"));
}

// ---- end to end -----------------------------------------------------------------------------

TEST(RepairModel, SparseLoraEndToEndKeepsExactZeros) {
  const auto& f = fixture();
  for (const auto& pruned : {f.pruned_nm, f.pruned_un}) {
    const std::string out = f.root + "/rep_sl";
    auto res = repair::repair_model(e2e_options(pruned, out), model::Runtime{});
    EXPECT_EQ(res.loop.steps, 6);
    EXPECT_TRUE(std::isfinite(res.loop.final_loss));
    EXPECT_EQ(res.merge.filled_pruned_positions, 0);
    EXPECT_GE(res.val_before, 0);
    EXPECT_GE(res.val_after, 0);
    auto before = read_weights(pruned), after = read_weights(out);
    ASSERT_EQ(before.size(), after.size());
    int64_t changed = 0;
    for (auto& [n, w] : before) {
      EXPECT_TRUE(after[n].eq(0).equal(w.eq(0))) << n;  // zeros equal exactly, read from safetensors
      changed += !after[n].equal(w);
    }
    EXPECT_GT(changed, 0);
    auto lm = model::load_model(out, torch::kCPU);  // loads: masks still match the zeros
    EXPECT_TRUE(lm.has_masks);
    EXPECT_TRUE(fs::exists(out + "/prune.json") && fs::exists(out + "/repair.json") && fs::exists(out + "/tokenizer.json"));
    EXPECT_FALSE(fs::exists(out + ".ckpt"));
    if (pruned == f.pruned_nm) { EXPECT_TRUE(res.sparsity.nm_checked && res.sparsity.nm_valid); }
    fs::remove_all(out);
  }
}

TEST(RepairModel, ResumeAfterInterruptionEqualsUninterrupted) {
  const auto& f = fixture();
  const std::string a = f.root + "/rep_full", b = f.root + "/rep_resumed";
  auto oa = e2e_options(f.pruned_nm, a);
  oa.val_limit = 0;
  repair::repair_model(oa, model::Runtime{});
  auto ob = e2e_options(f.pruned_nm, b);
  ob.val_limit = 0;
  ob.interrupt_after = 4;  // checkpoints at 2 and 4; killed before step 5
  EXPECT_THROW(repair::repair_model(ob, model::Runtime{}), std::runtime_error);
  EXPECT_FALSE(fs::exists(b));
  EXPECT_TRUE(fs::exists(b + ".ckpt/state.json"));
  ob.interrupt_after = 0;
  ob.loop.resume = true;
  auto res = repair::repair_model(ob, model::Runtime{});
  EXPECT_EQ(res.loop.start_step, 4);
  auto wa = read_weights(a), wb = read_weights(b);
  for (auto& [n, w] : wa) EXPECT_TRUE(torch::allclose(w, wb[n], 0, 1e-6)) << n;
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(RepairModel, MicroBatchesGiveTheFullBatchResult) {
  // --micro-batch 3 of a batch of 8 (chunks 3, 3, 2 with different answer-token counts):
  // gradient accumulation weighted by each chunk's tokens is the full batch's gradient, so six
  // AdamW steps later the merged weights agree within 1e-5.
  const auto& f = fixture();
  const std::string a = f.root + "/rep_whole", b = f.root + "/rep_micro";
  auto oa = e2e_options(f.pruned_un, a);
  oa.val_limit = 0;
  auto ra = repair::repair_model(oa, model::Runtime{});
  auto ob = e2e_options(f.pruned_un, b);
  ob.val_limit = 0;
  ob.loop.micro_batch = 3;
  auto rb = repair::repair_model(ob, model::Runtime{});
  EXPECT_NEAR(ra.loop.final_loss, rb.loop.final_loss, 1e-5);
  EXPECT_GT(expect_same_weights(a, b, f.pruned_un), 1e-3) << "the repair changed the weights by more than the tolerance";
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(RepairModel, CheckpointingGivesTheSameRepair) {
  // --checkpointing with --micro-batch 3: six AdamW steps give the merged weights of the plain
  // full-batch run within 1e-5, and repair.json records the setting.
  const auto& f = fixture();
  const std::string a = f.root + "/rep_plain", b = f.root + "/rep_ckpt";
  auto oa = e2e_options(f.pruned_nm, a);
  oa.val_limit = 0;
  repair::repair_model(oa, model::Runtime{});
  auto ob = e2e_options(f.pruned_nm, b);
  ob.val_limit = 0;
  ob.loop.micro_batch = 3;
  ob.checkpointing = true;
  repair::repair_model(ob, model::Runtime{});
  EXPECT_GT(expect_same_weights(a, b, f.pruned_nm), 1e-3);
  auto rec = nlohmann::json::parse(read_file(b + "/repair.json"));
  EXPECT_EQ(rec.at("checkpointing"), true);
  EXPECT_EQ(rec.at("micro_batch"), 3);
  fs::remove_all(a);
  fs::remove_all(b);
}

TEST(RepairModel, LoraBaselineFillsPrunedPositionsMaskedFtKeepsZeros) {
  const auto& f = fixture();
  const std::string out = f.root + "/rep_base";
  auto o = e2e_options(f.pruned_un, out);
  o.adapter.kind = AdapterKind::Lora;
  auto res = repair::repair_model(o, model::Runtime{});
  EXPECT_GT(res.merge.filled_pruned_positions, res.merge.pruned_positions / 2);
  EXPECT_LT(res.sparsity.overall, 0.1);  // dense again: the failure SparseLoRA fixes
  EXPECT_FALSE(fs::exists(out + "/masks.safetensors"));
  o.adapter.kind = AdapterKind::MaskedFt;
  o.kd_weight = 0;
  res = repair::repair_model(o, model::Runtime{});
  EXPECT_EQ(res.merge.filled_pruned_positions, 0);
  EXPECT_NEAR(res.sparsity.overall, 0.5, 1e-9);
  auto before = read_weights(f.pruned_un), after = read_weights(out);
  for (auto& [n, w] : before) EXPECT_TRUE(after[n].eq(0).equal(w.eq(0))) << n;
  // Language-only targets leave the vision tower bit-identical.
  o.adapter.kind = AdapterKind::SparseLora;
  o.adapter.targets = repair::parse_targets("language");
  res = repair::repair_model(o, model::Runtime{});
  after = read_weights(out);
  for (auto& [n, w] : before)
    if (n.rfind("vision_tower.", 0) == 0 || n.rfind("multi_modal_projector.", 0) == 0) { EXPECT_TRUE(after[n].equal(w)) << n; }
  fs::remove_all(out);
}

// ---- CLI --------------------------------------------------------------------------------------

TEST(RepairCli, RunsAndRejectsBadFlagsBeforeWriting) {
  const auto& f = fixture();
  const std::string out = f.root + "/cli_out", js = f.root + "/cli.json";
  const std::string base = std::string(RESSA_BINARY) + " repair --dense " + f.dense + " --pruned " + f.pruned_nm +
                           " --data " + f.data + " --out " + out + " --threads 1 --steps 3 --batch 4 --val-limit 4";
  for (const char* bad : {" --kd-weight 2", " --temperature 0", " --targets vision,audio", " --adapter dense",
                          " --rank-language 0", " --steps 0", " --resume"}) {
    int rc = std::system((base + bad + " 2>/dev/null").c_str());
    EXPECT_EQ(WEXITSTATUS(rc), 2) << bad;
    EXPECT_FALSE(fs::exists(out)) << bad;
  }
  int rc = std::system((base + " --json " + js + " 2>/dev/null").c_str());
  ASSERT_EQ(WEXITSTATUS(rc), 0);
  auto j = nlohmann::json::parse(read_file(js));
  for (const char* k : {"seconds", "steps", "final_loss", "adapter", "kd_weight", "temperature", "targets",
                        "filled_pruned_positions", "sparsity", "val_accuracy", "nm_valid"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_EQ(j["steps"], 3);
  EXPECT_EQ(j["nm_valid"], true);
  EXPECT_NEAR(j["sparsity"]["overall"].get<double>(), 0.5, 1e-9);
}
