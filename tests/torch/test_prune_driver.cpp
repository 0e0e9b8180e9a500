// Tests for src/ressa/prune/driver: whole-model pruning of a random-init `tiny` Llava calibrated on
// a small generated ShapesVQA set. Invariants: N:M validity of every targeted layer, exact tower
// sparsity, untouched non-targets, a dense tower bit-identical, calibration streams (sequential vs
// dense, recomputed independently), padding-free language statistics, save/reload with masks.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "ressa/core/atomic_file.h"
#include "ressa/core/version.h"
#include "ressa/data/shapes.h"
#include "ressa/io/config.h"
#include "ressa/io/key_layout.h"
#include "ressa/io/safetensors.h"
#include "ressa/model/checkpoint.h"
#include "ressa/prune/driver.h"
#include "ressa/prune/mask.h"
#include "ressa/train/vqa_data.h"

using namespace ressa;
using prune::Method;
using prune::PruneModelOptions;
using prune::SparsityPattern;
namespace fs = std::filesystem;

namespace {

const std::vector<Method> kMethods = {Method::Magnitude, Method::Wanda, Method::SparseGPT, Method::DSnoT};

std::map<std::string, torch::Tensor> snapshot(model::Llava& net) {
  std::map<std::string, torch::Tensor> out;
  for (auto& p : net->named_parameters()) out[p.key()] = p.value().detach().clone();
  return out;
}

std::set<std::string> targeted_weights(model::Llava& net) {
  std::set<std::string> out;
  for (auto& [name, lin] : net->vision_block_linears()) out.insert(name + ".weight");
  for (auto& [name, lin] : net->language_block_linears()) out.insert(name + ".weight");
  return out;
}

PruneModelOptions options(Method m, const SparsityPattern& v, const SparsityPattern& l, int64_t samples = 32) {
  PruneModelOptions o;
  o.method = m;
  o.vision = v;
  o.language = l;
  o.calib_samples = samples;
  o.calib_batch = 8;
  o.seed = 7;
  return o;
}

// Expects `got` to hold `want`'s masks: defined on the same Linears, equal bits. Returns how many
// Linears are masked.
int64_t expect_same_masks(model::Llava& got, model::Llava& want) {
  auto lins = want->linears();
  std::map<std::string, model::Linear> by(lins.begin(), lins.end());
  int64_t masked = 0;
  for (auto& [name, lin] : got->linears()) {
    EXPECT_EQ(lin->mask().defined(), by.at(name)->mask().defined()) << name;
    if (!lin->mask().defined() || !by.at(name)->mask().defined()) continue;
    ++masked;
    EXPECT_TRUE(torch::equal(lin->mask(), by.at(name)->mask())) << name;
  }
  return masked;
}

// Expects every parameter of `got` to equal `want`'s bit for bit.
void expect_same_parameters(model::Llava& got, model::Llava& want) {
  auto ps = want->named_parameters();
  for (auto& p : got->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), ps[p.key()])) << p.key();
}

}  // namespace

class PruneDriver : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root = fs::temp_directory_path() / ("ressa_test_prune_driver_" + std::to_string(getpid()));
    fs::remove_all(root);
    data::ShapesOptions so;
    so.train = 64;
    so.val = 8;
    so.test = 8;
    so.image_size = 32;
    so.threads = 1;
    data::generate_shapes(data_dir(), so);
    tok.emplace(train::build_tokenizer(data_dir(), {"train", "val", "test"}));
    cfg = io::preset_config("tiny");
    cfg.text.vocab_size = tok->vocab_size();
    cfg.image_token_index = tok->image_id();
    set.emplace(train::load_vqa_split(data_dir(), "train", *tok, cfg));
  }
  static void TearDownTestSuite() {
    set.reset();
    tok.reset();
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  static std::string data_dir() { return (root / "data").string(); }
  static model::Llava make_net(uint64_t seed = 1) {
    torch::manual_seed(seed);
    return model::Llava(cfg);
  }
  static prune::PruneReport run(model::Llava& net, const PruneModelOptions& o) {
    return prune::prune_model(net, *set, *tok, o, torch::kCPU);
  }

  static fs::path root;
  static std::optional<io::Tokenizer> tok;
  static io::LlavaConfig cfg;
  static std::optional<train::VqaSet> set;
};
fs::path PruneDriver::root;
std::optional<io::Tokenizer> PruneDriver::tok;
io::LlavaConfig PruneDriver::cfg;
std::optional<train::VqaSet> PruneDriver::set;

TEST_F(PruneDriver, TwoFourEveryMethodValidAndNonTargetsUntouched) {
  for (Method m : kMethods) {
    SCOPED_TRACE(prune::to_string(m));
    auto net = make_net();
    const auto before = snapshot(net);
    const auto targets = targeted_weights(net);
    auto rep = run(net, options(m, SparsityPattern::nm(2, 4), SparsityPattern::nm(2, 4)));
    ASSERT_EQ(rep.layers.size(), targets.size());
    for (const auto& l : rep.layers) {
      EXPECT_TRUE(std::isfinite(l.recon_error) && l.recon_error >= 0) << l.name << " " << l.recon_error;
      EXPECT_NEAR(l.sparsity, 0.5, 1e-9) << l.name;
    }
    bool kept_changed = false;
    auto lins = net->vision_block_linears();
    auto lang = net->language_block_linears();
    lins.insert(lins.end(), lang.begin(), lang.end());
    for (auto& [name, lin] : lins) {
      auto w = lin->weight.detach();
      EXPECT_TRUE(prune::is_nm_valid(w, 2, 4)) << name;
      ASSERT_TRUE(lin->mask().defined()) << name;
      EXPECT_TRUE(torch::equal(lin->mask().eq(0), w.eq(0))) << name << ": mask must mark exactly the zeros";
      const auto& w0 = before.at(name + ".weight");
      if (m == Method::SparseGPT) {
        kept_changed = kept_changed || !torch::equal(w, w0 * lin->mask());
      } else {
        EXPECT_TRUE(torch::equal(w, w0 * lin->mask())) << name << ": kept weights must be unchanged";
      }
    }
    if (m == Method::SparseGPT) { EXPECT_TRUE(kept_changed) << "SparseGPT updates the kept weights"; }
    for (auto& p : net->named_parameters())
      if (!targets.count(p.key())) { EXPECT_TRUE(torch::equal(p.value(), before.at(p.key()))) << p.key(); }
    EXPECT_FALSE(net->multi_modal_projector->linear_1->mask().defined());
    EXPECT_FALSE(net->language_model->lm_head->mask().defined());
    auto sr = eval::sparsity_report(net, 2, 4);
    EXPECT_TRUE(sr.nm_valid);
    EXPECT_NEAR(rep.sparsity.vision, 0.5, 1e-9);
    EXPECT_NEAR(rep.sparsity.language, 0.5, 1e-9);
    EXPECT_LT(rep.sparsity.model, rep.sparsity.overall);  // embeddings, norms, projector, lm_head stay dense
  }
}

TEST_F(PruneDriver, UnstructuredSeventyPercentPerTowerWithinATenthOfAPoint) {
  for (Method m : kMethods) {
    SCOPED_TRACE(prune::to_string(m));
    auto net = make_net();
    auto o = options(m, SparsityPattern::unstructured(0.7), SparsityPattern::unstructured(0.7));
    // Matrix quota: with the tiny model's d_in of 32/64 a per-row quota cannot reach 0.7 exactly
    // (floor(0.7*32)/32 = 0.6875).
    o.method_opts.granularity = prune::Granularity::Matrix;
    auto rep = run(net, o);
    EXPECT_NEAR(rep.sparsity.vision, 0.7, 1e-3);
    EXPECT_NEAR(rep.sparsity.language, 0.7, 1e-3);
    auto sr = eval::sparsity_report(net);
    EXPECT_DOUBLE_EQ(sr.vision, rep.sparsity.vision);
    EXPECT_DOUBLE_EQ(sr.language, rep.sparsity.language);
  }
}

TEST_F(PruneDriver, DenseVisionTowerStaysBitIdentical) {
  auto net = make_net();
  const auto before = snapshot(net);
  auto rep = run(net, options(Method::Wanda, SparsityPattern::unstructured(0), SparsityPattern::unstructured(0.5)));
  for (auto& p : net->named_parameters())
    if (p.key().rfind("vision_tower.", 0) == 0 || p.key().rfind("multi_modal_projector.", 0) == 0) {
      EXPECT_TRUE(torch::equal(p.value(), before.at(p.key()))) << p.key();
    }
  for (auto& [name, lin] : net->vision_block_linears()) EXPECT_FALSE(lin->mask().defined()) << name;
  for (auto& l : rep.layers) EXPECT_EQ(l.tower, "language") << l.name;
  EXPECT_EQ(rep.layers.size(), net->language_block_linears().size());
  EXPECT_EQ(rep.sparsity.vision, 0.0);
  EXPECT_NEAR(rep.sparsity.language, 0.5, 1e-9);  // d_in 32 and 64: the per-row quota is exact
}

// Recomputes, independently of the driver, the mean x² of the inputs of each block's fc2 (vision)
// and down_proj (language, real tokens only) as the driver's statistics must see them: block i of
// `blocks_of` (still dense while its statistics are collected) runs on the hidden state that
// `stream` computes before block i, on the examples the driver draws. Returns the means and the
// number of real language tokens.
std::pair<std::map<std::string, double>, int64_t> block_probe(model::Llava& stream, model::Llava& blocks_of,
                                                                const train::VqaSet& set, const io::Tokenizer& tok,
                                                                int64_t k, uint64_t seed) {
  torch::NoGradGuard ng;
  auto b = train::make_train_batch(set, prune::calib_indices(set.size(), k, seed), tok, torch::kCPU);
  auto real = b.attn.reshape({-1}).to(torch::kBool);
  std::map<std::string, double> out;
  auto hook = [&](model::Linear lin, const std::string& name, bool lang) {
    lin->set_input_hook([&out, &real, name, lang](const torch::Tensor& x) {
      auto rows = x.reshape({-1, x.size(-1)});
      out[name] = (lang ? rows.index({real}) : rows).square().mean().item<double>();
    });
  };
  auto hs = stream->vision_hidden_states(b.pixels);
  auto& vb = blocks_of->vision_tower->vision_model->blocks;
  for (size_t i = 0; i < vb.size(); ++i) {
    hook(vb[i]->mlp->fc2, "vision_tower.vision_model.encoder.layers." + std::to_string(i) + ".mlp.fc2", false);
    vb[i](hs[i]);
    vb[i]->mlp->fc2->set_input_hook(nullptr);
  }
  // Decoder inputs as LlavaImpl::decode builds them.
  auto x = stream->embed(b.ids, stream->image_features(b.pixels));
  const int64_t B = x.size(0), T = x.size(1);
  auto [cos, sin] = model::rope_tables((b.attn.cumsum(1) - 1).clamp_min(0), stream->config.text.head_dim(),
                                  stream->config.text.rope_theta);
  auto allowed = torch::ones({T, T}, torch::kBool).tril().unsqueeze(0) & b.attn.to(torch::kBool).view({B, 1, T});
  auto bias = torch::zeros({B, 1, T, T}).masked_fill(allowed.logical_not().unsqueeze(1), -1e9);
  auto& sb = stream->language_model->model->blocks;
  auto& db = blocks_of->language_model->model->blocks;
  for (size_t i = 0; i < db.size(); ++i) {
    hook(db[i]->mlp->down_proj, "language_model.model.layers." + std::to_string(i) + ".mlp.down_proj", true);
    db[i](x, cos, sin, bias);
    db[i]->mlp->down_proj->set_input_hook(nullptr);
    x = sb[i](x, cos, sin, bias);
  }
  return {out, real.sum().item<int64_t>()};
}

const prune::LayerReport& layer(const prune::PruneReport& r, const std::string& name) {
  for (auto& l : r.layers)
    if (l.name == name) return l;
  throw std::runtime_error("no layer " + name);
}

TEST_F(PruneDriver, SequentialAndDenseCalibrationStreams) {
  // fc2 / down_proj: inputs that are not normalised (a LayerNorm/RMSNorm output has mean x² ≈ 1
  // whatever the stream), so the statistic tells the streams apart.
  const std::string v0 = "vision_tower.vision_model.encoder.layers.0.mlp.fc2";
  const std::string v1 = "vision_tower.vision_model.encoder.layers.1.mlp.fc2";
  const std::string l0 = "language_model.model.layers.0.mlp.down_proj";
  const std::string l1 = "language_model.model.layers.1.mlp.down_proj";
  const int64_t k = 24;
  auto o = options(Method::Wanda, SparsityPattern::unstructured(0.5), SparsityPattern::unstructured(0.5), k);
  auto dense_net = make_net();
  auto seq_net = make_net();
  auto seq = run(seq_net, o);
  auto dn_net = make_net();
  o.calib = PruneModelOptions::Calib::Dense;
  auto dn = run(dn_net, o);
  // Sequential: the stream is the pruned model's; dense: the dense model's.
  const auto [seq_ref, real] = block_probe(seq_net, dense_net, *set, *tok, k, o.seed);
  const auto dense_ref = block_probe(dense_net, dense_net, *set, *tok, k, o.seed).first;

  for (auto& n : {v0, v1, l0, l1}) {
    SCOPED_TRACE(n);
    EXPECT_NEAR(layer(seq, n).input_sq_mean, seq_ref.at(n), 1e-5 * seq_ref.at(n));
    EXPECT_NEAR(layer(dn, n).input_sq_mean, dense_ref.at(n), 1e-5 * dense_ref.at(n));
  }
  // Block 0 sees the same inputs in both modes; later blocks see pruned vs dense activations.
  EXPECT_DOUBLE_EQ(layer(seq, v0).input_sq_mean, layer(dn, v0).input_sq_mean);
  for (auto& n : {v1, l0, l1})
    EXPECT_GT(std::abs(layer(seq, n).input_sq_mean - layer(dn, n).input_sq_mean), 1e-4 * dense_ref.at(n)) << n;
  auto first = [](model::Llava& net) { return net->vision_block_linears()[0].second->mask(); };
  EXPECT_TRUE(torch::equal(first(seq_net), first(dn_net)));

  // Rows: every vision token; only the real (non-padding) language tokens.
  int64_t want_real = 0;
  for (auto i : prune::calib_indices(set->size(), k, o.seed)) want_real += set->sequence[i].size();
  EXPECT_EQ(real, want_real);
  EXPECT_EQ(layer(seq, v1).calib_rows, k * (cfg.vision.num_patches() + 1));
  EXPECT_EQ(layer(seq, l0).calib_rows, want_real);
  EXPECT_EQ(layer(dn, l1).calib_rows, want_real);
  // Both are valid prunings at the requested sparsity.
  for (auto* r : {&seq, &dn}) {
    EXPECT_NEAR(r->sparsity.vision, 0.5, 1e-9);
    EXPECT_NEAR(r->sparsity.language, 0.5, 1e-9);
  }
}

TEST_F(PruneDriver, ProjectorAndLmHeadSwitches) {
  auto net = make_net();
  const auto before = snapshot(net);
  auto o = options(Method::Wanda, SparsityPattern::nm(2, 4), SparsityPattern::nm(2, 4));
  o.prune_projector = o.prune_lm_head = true;
  auto rep = run(net, o);
  for (auto lin : {net->multi_modal_projector->linear_1, net->multi_modal_projector->linear_2,
                   net->language_model->lm_head}) {
    ASSERT_TRUE(lin->mask().defined());
    EXPECT_TRUE(prune::is_nm_valid(lin->weight.detach(), 2, 4));
  }
  EXPECT_EQ(layer(rep, "language_model.lm_head").tower, "lm_head");
  EXPECT_EQ(layer(rep, "multi_modal_projector.linear_2").tower, "projector");
  for (const char* k : {"language_model.model.embed_tokens.weight", "language_model.model.norm.weight",
                        "vision_tower.vision_model.embeddings.position_embedding.weight"})
    EXPECT_TRUE(torch::equal(net->named_parameters()[k], before.at(k))) << k;
}

TEST_F(PruneDriver, DeterministicAndSparseGptHasTheLowestLayerError) {
  auto o = options(Method::SparseGPT, SparsityPattern::nm(2, 4), SparsityPattern::nm(2, 4));
  auto a = make_net(), b = make_net();
  auto ra = run(a, o);
  run(b, o);
  for (auto& p : a->named_parameters()) EXPECT_TRUE(torch::equal(p.value(), b->named_parameters()[p.key()])) << p.key();
  auto mean_err = [](const prune::PruneReport& r) {
    double s = 0;
    for (auto& l : r.layers) s += l.recon_error;
    return s / r.layers.size();
  };
  auto c = make_net();
  o.method = Method::Magnitude;
  auto rc = run(c, o);
  EXPECT_LT(mean_err(ra), mean_err(rc));
}

TEST_F(PruneDriver, BadRequestsFailBeforeTheModelChanges) {
  auto net = make_net();
  const auto before = snapshot(net);
  auto expect_untouched = [&] {
    for (auto& p : net->named_parameters()) ASSERT_TRUE(torch::equal(p.value(), before.at(p.key()))) << p.key();
    for (auto& [name, lin] : net->linears()) ASSERT_FALSE(lin->mask().defined()) << name;
  };
  try {
    run(net, options(Method::Wanda, SparsityPattern::unstructured(0.5), SparsityPattern::nm(3, 7)));
    FAIL() << "3:7 on d_in 32 must be rejected";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("divisible by 7"), std::string::npos) << e.what();
  }
  expect_untouched();
  auto o = options(Method::Wanda, SparsityPattern::nm(2, 4), SparsityPattern::nm(2, 4));
  o.calib_samples = 0;
  EXPECT_THROW(run(net, o), std::invalid_argument);
  o = options(Method::Wanda, SparsityPattern::nm(2, 4), SparsityPattern::nm(2, 4));
  EXPECT_THROW(prune::prune_model(net, train::VqaSet{}, *tok, o, torch::kCPU), std::invalid_argument);
  o.language.ratio = 1.0;
  o.language.kind = SparsityPattern::Kind::Unstructured;
  EXPECT_THROW(run(net, o), std::invalid_argument);
  expect_untouched();
  EXPECT_THROW(prune::parse_calib("bogus"), std::invalid_argument);
}

TEST_F(PruneDriver, CalibIndicesAreADeterministicSortedSubset) {
  auto a = prune::calib_indices(100, 10, 3);
  EXPECT_EQ(a, prune::calib_indices(100, 10, 3));
  EXPECT_NE(a, prune::calib_indices(100, 10, 4));
  ASSERT_EQ(a.size(), 10u);
  EXPECT_TRUE(std::is_sorted(a.begin(), a.end()));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 10u);
  for (auto i : a) EXPECT_TRUE(i >= 0 && i < 100);
  EXPECT_EQ(prune::calib_indices(5, 128, 0), (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST_F(PruneDriver, SavedDirectoryReloadsWithMasksAndRecord) {
  const std::string dense = (root / "dense").string(), out = (root / "pruned").string();
  auto net = make_net();
  model::save_model(dense, net);
  tok->save(dense + "/tokenizer.json");
  auto o = options(Method::Wanda, SparsityPattern::nm(2, 4), SparsityPattern::nm(2, 4), 16);
  auto rep = prune::prune_model_dir(dense, data_dir(), out, o, torch::kCPU);
  EXPECT_FALSE(fs::exists(out + ".partial"));

  // The same pruning in memory gives the same weights.
  auto ref = model::load_model(dense, torch::kCPU).model;
  auto calib = prune::load_calibration_set(data_dir(), data::Processor::load_dir(dense, cfg), cfg, 16, o.seed);
  prune::prune_model(ref, calib, *tok, o, torch::kCPU);
  auto lm = model::load_model(out, torch::kCPU);
  ASSERT_TRUE(lm.has_masks);
  for (auto& p : lm.model->named_parameters())
    EXPECT_TRUE(torch::equal(p.value(), ref->named_parameters()[p.key()])) << p.key();
  auto ref_lins = ref->linears();
  std::map<std::string, model::Linear> ref_by(ref_lins.begin(), ref_lins.end());
  for (auto& [name, lin] : lm.model->linears()) {
    EXPECT_EQ(lin->mask().defined(), ref_by.at(name)->mask().defined()) << name;
    if (lin->mask().defined()) { EXPECT_TRUE(torch::equal(lin->mask(), ref_by.at(name)->mask())) << name; }
  }
  EXPECT_TRUE(eval::sparsity_report(lm.model, 2, 4).nm_valid);

  auto rec = nlohmann::json::parse(read_file(out + "/prune.json"));
  EXPECT_EQ(rec["method"], "wanda");
  EXPECT_EQ(rec["pattern"], "2:4");
  EXPECT_EQ(rec["calib"], "sequential");
  EXPECT_EQ(rec["calib_samples"], 16);
  EXPECT_EQ(rec["seed"], 7);
  EXPECT_NEAR(rec["vision_sparsity"].get<double>(), 0.5, 1e-9);
  EXPECT_NEAR(rec["language_sparsity"].get<double>(), 0.5, 1e-9);
  EXPECT_EQ(rec["dense_model"]["path"], fs::absolute(dense).lexically_normal().string());
  EXPECT_EQ(rec["dense_model"]["fingerprint"], model::model_fingerprint(dense));
  EXPECT_EQ(rec["ressa_version"], version_string());
  EXPECT_EQ(read_file(out + "/tokenizer.json"), read_file(dense + "/tokenizer.json"));

  // A masks file that disagrees with the weights is rejected by load_model.
  const std::string bad = (root / "bad").string();
  fs::copy(out, bad, fs::copy_options::recursive);
  const std::string q = "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj";
  std::vector<uint8_t> zeros(32 * 32, 0);
  io::write_safetensors(bad + "/masks.safetensors", {{q + ".mask", io::DType::U8, {32, 32}, zeros.data()}});
  try {
    model::load_model(bad, torch::kCPU);
    FAIL() << "an all-pruned mask over non-zero weights must be rejected";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("non-zero where masks.safetensors says pruned"), std::string::npos) << e.what();
  }
  io::write_safetensors(bad + "/masks.safetensors", {{q + ".mask", io::DType::U8, {16, 64}, zeros.data()}});
  EXPECT_THROW(model::load_model(bad, torch::kCPU), std::runtime_error);

  // Refusals leave nothing behind: output == dense model, missing data.
  EXPECT_THROW(prune::prune_model_dir(dense, data_dir(), dense, o, torch::kCPU), std::invalid_argument);
  const std::string none = (root / "none").string();
  EXPECT_THROW(prune::prune_model_dir(dense, (root / "nodata").string(), none, o, torch::kCPU), std::invalid_argument);
  EXPECT_FALSE(fs::exists(none));
  EXPECT_FALSE(fs::exists(none + ".partial"));
}

// prune_model_dir streams the model on CPU (weights read from the mapped checkpoint, pruned
// blocks spilled to a scratch file, pages dropped after each stage): for every method, on an fp32
// and an fp16 checkpoint, with sequential and dense calibration, its output is the in-memory
// pruning of the same checkpoint loaded with its Linear weights in the stored dtype, bit for bit.
TEST_F(PruneDriver, StreamedPruningIsTheInMemoryPruningBitForBit) {
  for (const std::string& dtype : std::vector<std::string>{"float32", "float16"}) {
    const std::string dense = (root / ("stream-dense-" + dtype)).string();
    auto net = make_net(3);
    net->config.torch_dtype = dtype;
    model::save_model(dense, net);
    tok->save(dense + "/tokenizer.json");
    const auto dcfg = model::load_model(dense, torch::kCPU).model->config;
    auto calib = prune::load_calibration_set(data_dir(), data::Processor::load_dir(dense, dcfg), dcfg, 12, 7);
    for (Method m : kMethods) {
      for (auto mode : {PruneModelOptions::Calib::Sequential, PruneModelOptions::Calib::Dense}) {
        if (m != Method::Wanda && mode == PruneModelOptions::Calib::Dense) continue;
        SCOPED_TRACE(dtype + " " + prune::to_string(m) + " " + prune::to_string(mode));
        auto o = options(m, SparsityPattern::unstructured(0.6), SparsityPattern::nm(2, 4), 12);
        o.calib = mode;
        o.prune_lm_head = true;
        const std::string out = (root / "stream-out").string();
        fs::remove_all(out);
        prune::prune_model_dir(dense, data_dir(), out, o, torch::kCPU);

        model::LoadOptions lo;
        lo.stored_dtype = true;
        auto ref = model::load_model(dense, torch::kCPU, lo).model;
        prune::prune_model(ref, calib, *tok, o, torch::kCPU);
        auto got = model::load_model(out, torch::kCPU).model;
        auto ref_params = ref->named_parameters();
        for (auto& p : got->named_parameters()) {
          auto r = ref_params[p.key()].to(torch::kFloat32);
          if (dtype == "float16") r = r.to(torch::kHalf).to(torch::kFloat32);  // as written
          ASSERT_TRUE(torch::equal(p.value(), r)) << p.key();
        }
        EXPECT_EQ(expect_same_masks(got, ref), static_cast<int64_t>(targeted_weights(ref).size()) + 1);  // + lm_head
        auto rec = nlohmann::json::parse(read_file(out + "/prune.json"));
        if (m == Method::SparseGPT) { EXPECT_EQ(rec.at("hessian_dtype"), "float32"); }
        else if (m != Method::DSnoT) { EXPECT_FALSE(rec.contains("hessian_dtype")); }
      }
    }
  }
}

// Calibration activations spilled to a scratch file past activation_budget (a budget of one byte
// spills every stage) give the model of the in-memory run bit for bit, for a method that changes
// each stage (sequential) and one that does not (dense calibration); the report counts the bytes.
TEST_F(PruneDriver, SpilledActivationsGiveTheSameModel) {
  for (Method m : {Method::Wanda, Method::SparseGPT}) {
    for (auto mode : {PruneModelOptions::Calib::Sequential, PruneModelOptions::Calib::Dense}) {
      SCOPED_TRACE(prune::to_string(m) + " " + prune::to_string(mode));
      auto o = options(m, SparsityPattern::unstructured(0.5), SparsityPattern::nm(2, 4), 12);
      o.calib = mode;
      o.calib_batch = 4;
      auto a = make_net(5), b = make_net(5);
      const auto files = [] {
        int64_t n = 0;
        for (auto& e : fs::directory_iterator(root)) n += e.is_regular_file();
        return n;
      };
      const int64_t files_before = files();
      const auto ra = run(a, o);
      EXPECT_EQ(ra.activation_spill_bytes, 0);
      o.activation_budget = 1;
      o.scratch_dir = root.string();
      const auto rb = run(b, o);
      EXPECT_GT(rb.activation_spill_bytes, 0);
      expect_same_parameters(b, a);
      EXPECT_GT(expect_same_masks(b, a), 0);
      EXPECT_EQ(files(), files_before);  // the scratch files had no name and are gone
    }
  }
}

// A checkpoint whose weights are stored in 16 bits keeps its calibration activations in those 16
// bits between stages: spilling every stage writes exactly half the bytes of the same model stored
// in fp32 (each stage's output is kept once, in the dtype it is kept in).
TEST_F(PruneDriver, SixteenBitCheckpointsKeepSixteenBitActivations) {
  std::map<std::string, int64_t> spilled;
  for (const std::string& dtype : std::vector<std::string>{"float32", "float16", "bfloat16"}) {
    const std::string dense = (root / ("act-dense-" + dtype)).string(), out = (root / ("act-out-" + dtype)).string();
    auto net = make_net(6);
    net->config.torch_dtype = dtype;
    model::save_model(dense, net);
    tok->save(dense + "/tokenizer.json");
    auto o = options(Method::Wanda, SparsityPattern::unstructured(0.5), SparsityPattern::unstructured(0.5), 12);
    o.activation_budget = 1;
    spilled[dtype] = prune::prune_model_dir(dense, data_dir(), out, o, torch::kCPU).activation_spill_bytes;
  }
  EXPECT_GT(spilled["float32"], 0);
  EXPECT_EQ(spilled["float16"] * 2, spilled["float32"]);
  EXPECT_EQ(spilled["bfloat16"] * 2, spilled["float32"]);
}

// --max-memory: below the working set memory_estimate() gives it is refused before anything is
// written; just above it every stage's activations go to disk and the model is the same.
TEST_F(PruneDriver, MaxMemoryRefusesTooLittleAndSpillsPastTheWorkingSet) {
  const std::string dense = (root / "maxmem-dense").string();
  auto net = make_net(4);
  model::save_model(dense, net);
  tok->save(dense + "/tokenizer.json");
  auto o = options(Method::Wanda, SparsityPattern::unstructured(0.5), SparsityPattern::unstructured(0.5), 12);
  const std::string plain = (root / "maxmem-plain").string(), low = (root / "maxmem-low").string(),
                    spill = (root / "maxmem-spill").string();
  const auto r0 = prune::prune_model_dir(dense, data_dir(), plain, o, torch::kCPU);
  EXPECT_EQ(r0.activation_spill_bytes, 0);
  auto loaded = model::load_model(dense, torch::kCPU).model;
  const int64_t need = prune::memory_estimate(loaded, o, 12, 64);
  EXPECT_GT(need, int64_t(1) << 29);  // at least the runtime's share
  o.max_memory = 1 << 20;
  try {
    prune::prune_model_dir(dense, data_dir(), low, o, torch::kCPU);
    ADD_FAILURE() << "a 1 MiB limit was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--max-memory"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(fs::exists(low));
  // The estimate grows with the longest calibration sequence: a limit a few KB above the one at
  // the real lengths leaves a budget smaller than any stage's activations.
  int64_t longest = 0;
  const auto dcfg = loaded->config;
  auto calib = prune::load_calibration_set(data_dir(), data::Processor::load_dir(dense, dcfg), dcfg, 12, o.seed);
  for (const auto& s : calib.sequence) longest = std::max<int64_t>(longest, static_cast<int64_t>(s.size()));
  o.max_memory = prune::memory_estimate(loaded, o, calib.size(), longest) + 4096;
  const auto r1 = prune::prune_model_dir(dense, data_dir(), spill, o, torch::kCPU);
  EXPECT_GT(r1.activation_spill_bytes, 0);
  auto a = model::load_model(plain, torch::kCPU).model, b = model::load_model(spill, torch::kCPU).model;
  expect_same_parameters(b, a);
  EXPECT_GT(expect_same_masks(b, a), 0);
  EXPECT_EQ(nlohmann::json::parse(read_file(spill + "/prune.json")).at("layers"),
            nlohmann::json::parse(read_file(plain + "/prune.json")).at("layers"));
}

// ---- allocation and per-module rules -----------------------------------------------------------

namespace {
// The block index of a tower-block Linear ("...layers.<i>...."), -1 for others.
int64_t block_of(const std::string& name) {
  const auto at = name.find("layers.");
  return at == std::string::npos ? -1 : std::stoll(name.substr(at + 7));
}
}  // namespace

// OWL gives each block one ratio, the blocks different ones, and keeps each tower's
// size-weighted mean at the requested sparsity; with a per-matrix quota each layer holds its
// ratio's count of zeros (floor), so each tower is within one weight per layer of the target.
TEST_F(PruneDriver, OwlAllocatesPerBlockAndKeepsEachTowersMean) {
  auto net = make_net();
  auto o = options(Method::Wanda, SparsityPattern::unstructured(0.6), SparsityPattern::unstructured(0.6));
  o.allocation = PruneModelOptions::Allocation::Owl;
  o.owl.threshold = 3;
  o.owl.lambda = 0.1;
  o.method_opts.granularity = prune::Granularity::Matrix;
  auto rep = run(net, o);
  std::map<std::string, torch::Tensor> weight;
  for (auto& [name, lin] : net->linears()) weight[name] = lin->weight.detach();
  for (const std::string tower : {"vision", "language"}) {
    SCOPED_TRACE(tower);
    std::map<int64_t, std::set<std::string>> patterns;  // block -> patterns of its layers
    double target_zeros = 0, weights = 0;
    int64_t zeros = 0, layers = 0;
    for (const auto& l : rep.layers) {
      if (l.tower != tower) continue;
      const auto& w = weight.at(l.name);
      patterns[block_of(l.name)].insert(l.pattern);
      target_zeros += std::stod(l.pattern) * w.numel();
      weights += w.numel();
      zeros += w.eq(0).sum().item<int64_t>();
      ++layers;
    }
    ASSERT_GE(patterns.size(), 2u);
    std::set<std::string> distinct;
    for (const auto& [b, ps] : patterns) {
      EXPECT_EQ(ps.size(), 1u) << "block " << b << ": one ratio per block";
      distinct.insert(*ps.begin());
    }
    EXPECT_GE(distinct.size(), 2u) << "the blocks' outlier ratios differ, so their sparsities do";
    EXPECT_NEAR(target_zeros / weights, 0.6, 1e-6) << "patterns are written with the shortest round-tripping decimal";
    EXPECT_LE(std::abs(static_cast<double>(zeros) - 0.6 * weights), static_cast<double>(layers)) << zeros;
  }
}

TEST_F(PruneDriver, OwlIsRefusedForNM) {
  auto o = options(Method::Wanda, SparsityPattern::nm(2, 4), SparsityPattern::nm(2, 4));
  o.allocation = PruneModelOptions::Allocation::Owl;
  try {
    o.validate();
    FAIL() << "OWL with 2:4 was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("N:M"), std::string::npos) << e.what();
  }
}

// --targets / --ignore select by module name (either key layout), --override sets a pattern by
// name, first match first.
TEST_F(PruneDriver, TargetsIgnoreAndOverridesSelectByName) {
  auto net = make_net();
  net->config.key_layout = io::KeyLayout::kTransformers5;  // as if read from a transformers >= 4.52 checkpoint
  auto o = options(Method::Wanda, SparsityPattern::unstructured(0.5), SparsityPattern::unstructured(0.5));
  o.rules.targets = {prune::NamePattern::parse("re:.*layers\\.0\\..*"),
                     prune::NamePattern::parse("re:model\\.language_model\\.layers\\.1\\.mlp\\.up_proj")};
  o.rules.ignore = {prune::NamePattern::parse("re:.*\\.mlp\\.fc2")};
  o.rules.overrides = {prune::PatternOverride::parse("re:.*q_proj=0.75"), prune::PatternOverride::parse("re:.*_proj=2:4")};
  auto rep = run(net, o);
  std::set<std::string> pruned;
  for (auto& [name, lin] : net->linears()) {
    if (!lin->mask().defined()) continue;
    pruned.insert(name);
    const double zeros = lin->weight.eq(0).sum().item<double>() / lin->weight.numel();
    if (name.find("q_proj") != std::string::npos) {
      EXPECT_NEAR(zeros, 0.75, 0.02) << name;
    } else if (name.find("_proj") != std::string::npos) {
      EXPECT_TRUE(prune::is_nm_valid(lin->weight, 2, 4)) << name;
    } else {
      EXPECT_NEAR(zeros, 0.5, 0.02) << name;
    }
  }
  for (const auto& name : pruned) {
    const bool block0 = name.find("layers.0.") != std::string::npos;
    EXPECT_TRUE(block0 || name == "language_model.model.layers.1.mlp.up_proj") << name;  // the file-layout name matched
    EXPECT_EQ(name.find(".mlp.fc2"), std::string::npos) << name;
  }
  EXPECT_TRUE(pruned.count("language_model.model.layers.1.mlp.up_proj"));
  EXPECT_TRUE(pruned.count("vision_tower.vision_model.encoder.layers.0.mlp.fc1"));
  EXPECT_FALSE(pruned.count("vision_tower.vision_model.encoder.layers.0.mlp.fc2"));
  EXPECT_EQ(pruned.size(), rep.layers.size());
  EXPECT_THROW(prune::NamePattern::parse("re:("), std::invalid_argument);
  EXPECT_THROW(prune::PatternOverride::parse("re:.*q_proj"), std::invalid_argument);  // no pattern
  EXPECT_THROW(prune::PatternOverride::parse("re:.*=1.5"), std::invalid_argument);
}
