// Compressed checkpoints (`ressa export` -> model::export_compressed, model::load_model) and the
// sparse inference path of Linear: lossless round trip for bitmask and 2:4, the same logits and
// greedy tokens as the dense-with-zeros model, when the dense path is taken instead, the N:M
// error, and hand-made bad compressed directories.
#include <dlfcn.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "ressa/core/atomic_file.h"
#include "ressa/io/safetensors.h"
#include "ressa/eval/sparsity.h"
#include "ressa/model/checkpoint.h"
#include "ressa/model/intraop.h"
#include "ressa/model/linear.h"
#include "ressa/sparse/kernels.h"
#include "ressa/prune/mask.h"

#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace ressa;

namespace {
const std::string kFixture = std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/llava_tiny";
const std::string kGolden = std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/llava_tiny_golden.safetensors";

fs::path temp_root() { return ressa::test::process_temp_dir("test_sparse"); }

// The tiny fixture with every tower-block Linear magnitude-pruned to `pattern` (weight zeroed,
// mask set), saved as a model directory (plus a tokenizer.json, which export copies).
std::string pruned_fixture(const std::string& name, const prune::SparsityPattern& pattern) {
  auto lm = model::load_model(kFixture, torch::kCPU);
  {
    torch::NoGradGuard ng;
    for (auto group : {lm.model->vision_block_linears(), lm.model->language_block_linears()})
      for (auto& [lname, lin] : group) {
        auto m = prune::mask_for(lin->weight.abs(), pattern, prune::Granularity::Row).to(torch::kFloat32);
        lin->weight.mul_(m);
        lin->set_mask(m);
      }
  }
  const auto dir = (temp_root() / name).string();
  model::save_model(dir, lm.model);
  write_file_atomic(dir + "/tokenizer.json", "{\"model\": {\"type\": \"WordLevel\"}}\n");
  return dir;
}

torch::Tensor golden(const io::SafetensorsFile& f, const std::string& name) {
  return model::to_torch(f.at(name), f.data(f.at(name)));
}

// Logits of the golden inputs, no-grad (the sparse path when the model has one).
torch::Tensor logits_of(model::Llava& net) {
  torch::NoGradGuard ng;
  net->eval();
  auto g = io::SafetensorsFile::open(kGolden);
  return net->forward(golden(g, "pixels"), golden(g, "input_ids"), golden(g, "attention_mask"));
}

std::string load_error(const std::string& dir) {
  try {
    model::load_model(dir, torch::kCPU);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

void expect_same_tensors(model::Llava& a, model::Llava& b) {
  auto ta = model::checkpoint_tensors(a), tb = model::checkpoint_tensors(b);
  ASSERT_EQ(ta.size(), tb.size());
  for (size_t i = 0; i < ta.size(); ++i) {
    EXPECT_EQ(ta[i].first, tb[i].first);
    EXPECT_TRUE(torch::equal(ta[i].second, tb[i].second)) << ta[i].first;
  }
}
}  // namespace

class SparseCheckpoint : public ::testing::TestWithParam<std::string> {};

// Lossless: the exported directory loads back to exactly the dense-with-zeros weights and masks;
// pruned layers are stored only compressed; the logits match the dense model's.
// The fixture pruned for format `fmt` ("bitmask": 70% unstructured, "nm": 2:4), saved as
// <temp>/<tag>src_<fmt> and exported to <temp>/<tag>out_<fmt>.
struct Exported {
  std::string src, out;
  model::ExportOptions opts;
  model::ExportReport report;
};
Exported prune_and_export(const std::string& tag, const std::string& fmt) {
  const bool nm = fmt == "nm";
  Exported e;
  e.src = pruned_fixture(tag + "src_" + fmt, nm ? prune::SparsityPattern::nm(2, 4) : prune::SparsityPattern::unstructured(0.7));
  e.out = (temp_root() / (tag + "out_" + fmt)).string();
  e.opts.format = nm ? model::SparseFormat::NM : model::SparseFormat::Bitmask;
  e.report = model::export_compressed(e.src, e.out, e.opts);
  return e;
}

TEST_P(SparseCheckpoint, RoundTripAndSameLogits) {
  const bool nm = GetParam() == "nm";
  const auto [src, out, o, rep] = prune_and_export("", GetParam());
  auto dense = model::load_model(src, torch::kCPU);
  const size_t n_targets = dense.model->vision_block_linears().size() + dense.model->language_block_linears().size();
  EXPECT_EQ(rep.compressed.size(), n_targets);
  EXPECT_TRUE(fs::exists(out + "/tokenizer.json"));
  EXPECT_FALSE(fs::exists(out + ".partial"));

  auto cfg = nlohmann::json::parse(read_file(out + "/config.json"));
  EXPECT_EQ(cfg["quantization_config"]["quant_method"], "compressed-tensors");
  EXPECT_EQ(cfg["quantization_config"]["sparsity_config"]["format"], nm ? "sparse-24-bitmask" : "sparse-bitmask");
  EXPECT_EQ(cfg["quantization_config"]["sparsity_config"]["targets"].size(), n_targets);

  auto ckpt = io::Checkpoint::open_dir(out);
  for (const auto& name : rep.compressed) {
    EXPECT_FALSE(ckpt.contains(name + ".weight")) << name;
    EXPECT_TRUE(ckpt.contains(name + ".compressed")) << name;
    EXPECT_TRUE(ckpt.contains(name + ".bitmask")) << name;
  }

  auto comp = model::load_model(out, torch::kCPU);
  EXPECT_EQ(comp.compression, GetParam());
  EXPECT_EQ(comp.compressed_layers.size(), n_targets);
  expect_same_tensors(dense.model, comp.model);
  auto dl = dense.model->linears(), cl = comp.model->linears();
  for (size_t i = 0; i < dl.size(); ++i) {
    ASSERT_EQ(dl[i].second->mask().defined(), cl[i].second->mask().defined()) << dl[i].first;
    if (dl[i].second->mask().defined()) {
      EXPECT_TRUE(torch::equal(dl[i].second->mask(), cl[i].second->mask())) << dl[i].first;
    }
    EXPECT_EQ(cl[i].second->compressed() != nullptr, dl[i].second->mask().defined()) << dl[i].first;
  }

  // The sparse path is taken (no grad, CPU float) and gives the dense model's answers.
  {
    torch::NoGradGuard ng;
    for (auto group : {comp.model->vision_block_linears(), comp.model->language_block_linears()}) {
      auto& [name, lin] = group.front();
      ASSERT_TRUE(lin->uses_sparse_path(torch::randn({3, lin->in_features()}))) << name;
    }
  }
  auto a = logits_of(dense.model), b = logits_of(comp.model);
  EXPECT_LT((a - b).abs().max().item<double>(), 1e-4);
  EXPECT_TRUE(torch::equal(a.argmax(-1), b.argmax(-1)));

  // Re-exporting the compressed directory gives the same tensors again.
  const auto out2 = (temp_root() / ("out2_" + GetParam())).string();
  model::export_compressed(out, out2, o);
  auto comp2 = model::load_model(out2, torch::kCPU);
  expect_same_tensors(comp.model, comp2.model);
}

INSTANTIATE_TEST_SUITE_P(Formats, SparseCheckpoint, ::testing::Values("bitmask", "nm"));

// A model whose weights came from an fp16 checkpoint exports losslessly with f16 values: the
// compressed layers load back to exactly the same weights (bf16 values would round them).
TEST_P(SparseCheckpoint, F16ValuesAreExactForFp16Weights) {
  const bool nm = GetParam() == "nm";
  const auto src = pruned_fixture("fp16src_" + GetParam(),
                                  nm ? prune::SparsityPattern::nm(2, 4) : prune::SparsityPattern::unstructured(0.7));
  {  // round every weight to fp16, as a model loaded from an fp16 checkpoint holds them
    auto lm = model::load_model(src, torch::kCPU);
    torch::NoGradGuard ng;
    for (auto& [name, lin] : lm.model->linears()) lin->weight.copy_(lin->weight.to(torch::kHalf).to(torch::kFloat));
    model::save_model(src, lm.model);
  }
  auto dense = model::load_model(src, torch::kCPU);
  for (auto vt : {sparse::ValueType::f16, sparse::ValueType::bf16}) {
    model::ExportOptions o;
    o.format = nm ? model::SparseFormat::NM : model::SparseFormat::Bitmask;
    o.values = vt;
    const auto out = (temp_root() / ("fp16out_" + GetParam() + "_" + sparse::to_string(vt))).string();
    model::export_compressed(src, out, o);
    auto cfg = nlohmann::json::parse(read_file(out + "/config.json"));
    EXPECT_EQ(cfg["ressa_sparse"]["values"], sparse::to_string(vt));
    auto comp = model::load_model(out, torch::kCPU);
    bool all_equal = true;
    auto dl = dense.model->linears(), cl = comp.model->linears();
    for (size_t i = 0; i < dl.size(); ++i) all_equal &= torch::equal(dl[i].second->weight, cl[i].second->weight);
    if (vt == sparse::ValueType::f16) {
      expect_same_tensors(dense.model, comp.model);
      auto a = logits_of(dense.model), b = logits_of(comp.model);
      EXPECT_LT((a - b).abs().max().item<double>(), 1e-4);
      EXPECT_TRUE(torch::equal(a.argmax(-1), b.argmax(-1)));
    } else {
      EXPECT_FALSE(all_equal);  // bf16 keeps 8 significant bits of fp16's 11
    }
  }
  // A kept weight beyond f16's range (65504) stops the f16 export, naming the layer; bf16 holds it.
  {
    auto lm = model::load_model(src, torch::kCPU);
    torch::NoGradGuard ng;
    auto [lname, lin] = lm.model->language_block_linears().front();  // a copy: the list is a temporary
    auto kept = lin->weight.ne(0).nonzero()[0];
    lin->weight.index_put_({kept[0], kept[1]}, 1e5);
    model::save_model(src, lm.model);
    model::ExportOptions o;
    o.format = nm ? model::SparseFormat::NM : model::SparseFormat::Bitmask;
    o.values = sparse::ValueType::f16;
    const auto out = (temp_root() / ("fp16big_" + GetParam())).string();
    try {
      model::export_compressed(src, out, o);
      ADD_FAILURE() << "f16 export of a 1e5 weight did not fail";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(lname), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("65504"), std::string::npos) << e.what();
    }
    EXPECT_FALSE(fs::exists(out));
    o.values = sparse::ValueType::bf16;
    EXPECT_NO_THROW(model::export_compressed(src, out, o));
  }
}

// model::intraop_for really runs on torch's threads (at::parallel_for in a translation unit built
// without OpenMP runs serially), and the sparse kernels on that pool give the same logits, bit
// for bit, as on their own pool.
TEST_P(SparseCheckpoint, KernelsOnTorchsIntraopPool) {
  const int saved = torch::get_num_threads();
  torch::set_num_threads(2);
  std::mutex mu;
  std::set<std::thread::id> ids;
  int64_t covered = 0;
  model::intraop_for(0, 2, 1, [&](int64_t b, int64_t e) {
    std::lock_guard<std::mutex> lk(mu);
    ids.insert(std::this_thread::get_id());
    covered += e - b;
  });
  EXPECT_EQ(covered, 2);
  EXPECT_EQ(ids.size(), 2u);

  const auto [src, out, o, rep] = prune_and_export("intraop", GetParam());
  auto comp = model::load_model(out, torch::kCPU);
  sparse::set_parallel_runner(nullptr);
  auto own = logits_of(comp.model);
  model::run_sparse_kernels_on_intraop_pool();
  auto shared = logits_of(comp.model);
  sparse::set_parallel_runner(nullptr);
  torch::set_num_threads(saved);
  EXPECT_TRUE(torch::equal(own, shared));
}

// Training, teacher mode and modified weights take the dense path; the kernel path agrees with
// F::linear for one layer, bias included.
TEST(SparseLinear, FallsBackToDenseWhenItMust) {
  const auto src = pruned_fixture("src_fallback", prune::SparsityPattern::unstructured(0.5));
  const auto out = (temp_root() / "out_fallback").string();
  model::export_compressed(src, out, {});
  auto comp = model::load_model(out, torch::kCPU);
  auto lin = comp.model->vision_block_linears().front().second;  // CLIP q_proj: has a bias
  ASSERT_TRUE(lin->compressed());
  ASSERT_TRUE(lin->bias.defined());
  auto x = torch::randn({4, 7, lin->in_features()});
  EXPECT_FALSE(lin->uses_sparse_path(x)) << "grad mode is on";
  torch::NoGradGuard ng;
  EXPECT_TRUE(lin->uses_sparse_path(x));
  EXPECT_FALSE(lin->uses_sparse_path(x.to(torch::kFloat64)));
  auto want = torch::nn::functional::linear(x, lin->weight, lin->bias);
  auto got = lin->forward(x);
  EXPECT_EQ(got.sizes(), want.sizes());
  EXPECT_LT((got - want).abs().max().item<double>(), 1e-5);
  EXPECT_LT((model::sparse_linear(*lin->compressed(), x.narrow(0, 0, 0), lin->bias)).numel(), 1);
  lin->set_teacher_mode(true);
  EXPECT_FALSE(lin->uses_sparse_path(x));
  lin->set_teacher_mode(false);
  lin->weight.mul_(2);  // in-place change: the compressed copy is stale now
  EXPECT_FALSE(lin->uses_sparse_path(x));
  EXPECT_LT((lin->forward(x) - torch::nn::functional::linear(x, lin->weight, lin->bias)).abs().max().item<double>(), 1e-6);
}

// Dense inference path (no gradients): row ranges on torch's threads, sgemv at batch 1 and sgemm
// otherwise, against float64 linear, for ragged row counts, 1-D to 3-D inputs, 1 and 2 threads;
// with gradients on, or a bias of the wrong length, it steps aside for torch's linear.
TEST(DenseLinear, InferencePathMatchesFloat64Linear) {
  const int saved = torch::get_num_threads();
  torch::manual_seed(3);
  for (const auto& [rows, cols] : {std::pair<int64_t, int64_t>{53, 37}, {301, 512}, {1, 8}})
    for (int threads : {1, 2})
      for (const auto& xshape : {std::vector<int64_t>{cols}, {1, cols}, {64, cols}, {3, 5, cols}}) {
        SCOPED_TRACE(std::to_string(rows) + "x" + std::to_string(cols) + " threads " + std::to_string(threads) +
                     " x " + std::to_string(xshape.size()) + "-D, " + std::to_string(xshape.front()));
        torch::set_num_threads(threads);
        model::Linear lin(cols, rows, true);
        auto x = torch::randn(xshape);
        torch::NoGradGuard ng;
        auto y = model::dense_inference_linear(x, lin->weight, lin->bias);
        ASSERT_TRUE(y.defined());
        auto want = torch::nn::functional::linear(x.to(torch::kFloat64), lin->weight.to(torch::kFloat64),
                                                  lin->bias.to(torch::kFloat64));
        ASSERT_EQ(y.sizes(), want.sizes());
        EXPECT_LT((y.to(torch::kFloat64) - want).abs().max().item<double>(), 1e-5 * (1.0 + want.abs().max().item<double>()));
        EXPECT_TRUE(torch::equal(lin->forward(x), y));  // what forward() runs without gradients
        EXPECT_TRUE(torch::allclose(model::dense_inference_linear(x, lin->weight, {}), y - lin->bias, 1e-5, 1e-5));
      }
  torch::set_num_threads(saved);
  {  // OpenBLAS with threads of its own (RESSA_BLAS_THREADS): one call, OpenBLAS splits it
    auto set = reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
    auto get = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
    ASSERT_TRUE(set && get) << "the tests run with OpenBLAS (scripts/setup.sh installs it)";
    const int blas_saved = get();
    set(2);
    model::Linear lin(512, 301, true);
    for (int64_t batch : {1, 9}) {
      auto x = torch::randn({batch, 512});
      torch::NoGradGuard ng;
      auto y = model::dense_inference_linear(x, lin->weight, lin->bias);
      ASSERT_TRUE(y.defined());
      auto want = torch::nn::functional::linear(x.to(torch::kFloat64), lin->weight.to(torch::kFloat64),
                                                lin->bias.to(torch::kFloat64));
      EXPECT_LT((y.to(torch::kFloat64) - want).abs().max().item<double>(), 1e-5 * (1.0 + want.abs().max().item<double>()));
    }
    set(blas_saved);
  }
  model::Linear lin(16, 8, true);
  auto x = torch::randn({2, 16});
  EXPECT_FALSE(model::dense_inference_linear(x, lin->weight, lin->bias).defined()) << "gradients are on";
  auto y = lin->forward(x);
  EXPECT_TRUE(y.requires_grad());
  y.sum().backward();
  EXPECT_TRUE(lin->weight.grad().defined());
  torch::NoGradGuard ng;
  EXPECT_FALSE(model::dense_inference_linear(x, lin->weight, torch::zeros({7})).defined()) << "bias of the wrong length";
  EXPECT_FALSE(model::dense_inference_linear(x.to(torch::kFloat64), lin->weight, lin->bias).defined());
  EXPECT_FALSE(model::dense_inference_linear(x, lin->weight.t(), lin->bias).defined()) << "weight not contiguous";
}

// A masked layer without gradients skips weight * mask only while the weight holds the mask's
// zeros; a replaced mask or weight (a new tensor, its version counter back at 0) or an in-place
// change is checked again.
TEST(DenseLinear, MaskedInferenceFollowsTheMask) {
  torch::manual_seed(4);
  model::Linear lin(24, 10, true);
  auto x = torch::randn({3, 24});
  const auto want = [&] { return torch::nn::functional::linear(x, lin->weight * lin->mask(), lin->bias); };
  torch::NoGradGuard ng;
  lin->set_mask((torch::rand({10, 24}) > 0.5).to(torch::kFloat32));
  EXPECT_TRUE(torch::allclose(lin->forward(x), want(), 1e-6, 1e-6)) << "weight not yet masked";
  lin->weight.mul_(lin->mask());  // in place: the zeros are written now
  EXPECT_TRUE(torch::allclose(lin->forward(x), want(), 1e-6, 1e-6));
  lin->set_mask((torch::rand({10, 24}) > 0.5).to(torch::kFloat32));  // a new mask, version 0
  EXPECT_TRUE(torch::allclose(lin->forward(x), want(), 1e-6, 1e-6)) << "new mask";
  lin->weight = torch::randn({10, 24});  // a new dense weight, version 0
  EXPECT_TRUE(torch::allclose(lin->forward(x), want(), 1e-6, 1e-6)) << "new weight";
  lin->weight.mul_(lin->mask());
  EXPECT_TRUE(torch::allclose(lin->forward(x), want(), 1e-6, 1e-6));
  lin->weight.add_(1.0);  // in place: nonzero where the mask is 0 again
  EXPECT_TRUE(torch::allclose(lin->forward(x), want(), 1e-6, 1e-6)) << "weight changed in place";
}

// Inference-only loading (ressa eval): compressed layers hold no dense copy and no float mask,
// give the same logits and sparsity report as the default load, and refuse the dense path.
TEST_P(SparseCheckpoint, ReleaseDenseKeepsOnlyTheCompressedCopy) {
  const auto out = prune_and_export("rel_", GetParam()).out;
  auto full = model::load_model(out, torch::kCPU);
  model::LoadOptions lo;
  lo.release_dense = true;
  auto lean = model::load_model(out, torch::kCPU, lo);
  size_t released = 0;
  for (auto& [name, lin] : lean.model->linears()) {
    if (!lin->compressed()) {
      EXPECT_FALSE(lin->dense_released()) << name;
      continue;
    }
    ++released;
    EXPECT_TRUE(lin->dense_released()) << name;
    EXPECT_FALSE(lin->mask().defined()) << name;
    EXPECT_LE(lin->weight.storage().nbytes(), sizeof(float)) << name;  // no dense storage
    EXPECT_EQ(lin->weight.size(0), lin->compressed()->rows()) << name;
    EXPECT_EQ(lin->weight.size(1), lin->compressed()->cols()) << name;
  }
  EXPECT_EQ(released, lean.compressed_layers.size());
  EXPECT_GT(released, 0u);
  // The decompressed copy equals the weight a default load materialises.
  auto fl = full.model->linears(), ll = lean.model->linears();
  for (size_t i = 0; i < fl.size(); ++i)
    EXPECT_TRUE(torch::equal(fl[i].second->weight, ll[i].second->dense_weight_copy())) << fl[i].first;
  auto a = logits_of(full.model), b = logits_of(lean.model);
  EXPECT_TRUE(torch::equal(a, b));
  const auto ra = eval::sparsity_report(full.model), rb = eval::sparsity_report(lean.model);
  EXPECT_DOUBLE_EQ(ra.vision, rb.vision);
  EXPECT_DOUBLE_EQ(ra.language, rb.language);
  EXPECT_DOUBLE_EQ(ra.model, rb.model);
  EXPECT_GT(rb.overall, 0.4);
  // Anything that needs the dense weight fails loudly instead of multiplying by the placeholder.
  auto lin = lean.model->vision_block_linears().front().second;
  auto x = torch::randn({2, lin->in_features()});
  try {
    lin->forward(x);  // grad mode on: not the sparse path
    FAIL() << "forward with gradients ran on a released layer";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("inference only"), std::string::npos) << e.what();
  }
}

TEST(SparseCheckpoint, NmExportOfUnstructuredModelNamesTheLayer) {
  const auto src = pruned_fixture("src_unstructured", prune::SparsityPattern::unstructured(0.7));
  const auto out = (temp_root() / "out_bad_nm").string();
  model::ExportOptions o;
  o.format = model::SparseFormat::NM;
  try {
    model::export_compressed(src, out, o);
    FAIL() << "expected std::invalid_argument";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("vision_tower.vision_model.encoder.layers.0.self_attn"), std::string::npos) << msg;
    EXPECT_NE(msg.find("2:4"), std::string::npos) << msg;
  }
  EXPECT_FALSE(fs::exists(out));
  EXPECT_FALSE(fs::exists(out + ".partial"));
}

TEST(SparseCheckpoint, DenseModelHasNothingToExport) {
  const auto dir = temp_root() / "dense_copy";
  fs::create_directories(dir);
  for (auto& e : fs::directory_iterator(kFixture)) fs::copy_file(e.path(), dir / e.path().filename());
  write_file_atomic((dir / "tokenizer.json").string(), "{}\n");
  try {
    model::export_compressed(dir.string(), (temp_root() / "out_dense").string(), {});
    FAIL() << "expected std::runtime_error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no pruned layers"), std::string::npos) << e.what();
  }
}

// Hand-made bad compressed directories: each error names the file or layer.
TEST(SparseCheckpoint, BadCompressedDirectoriesGiveClearErrors) {
  const auto src = pruned_fixture("src_bad", prune::SparsityPattern::unstructured(0.7));
  const auto good = (temp_root() / "good").string();
  model::export_compressed(src, good, {});
  auto copy = [&](const std::string& name) {
    const auto d = temp_root() / name;
    fs::remove_all(d);
    fs::copy(good, d, fs::copy_options::recursive);
    return d.string();
  };
  auto edit_config = [](const std::string& dir, const std::function<void(nlohmann::json&)>& f) {
    auto j = nlohmann::json::parse(read_file(dir + "/config.json"));
    f(j);
    write_file_atomic(dir + "/config.json", j.dump(2));
  };
  const std::string first = "vision_tower.vision_model.encoder.layers.0.self_attn.q_proj";

  auto d = copy("bad_target");
  edit_config(d, [](nlohmann::json& j) { j["quantization_config"]["sparsity_config"]["targets"].push_back("no.such.layer"); });
  EXPECT_NE(load_error(d).find("no.such.layer"), std::string::npos) << load_error(d);

  // A compressed layer config.json does not list: its dense weight is missing (checked first).
  d = copy("unlisted");
  std::string dropped;
  edit_config(d, [&](nlohmann::json& j) {
    auto& t = j["quantization_config"]["sparsity_config"]["targets"];
    dropped = t.front().get<std::string>();
    t.erase(t.begin());
  });
  EXPECT_NE(load_error(d).find("missing tensors: " + dropped + ".weight"), std::string::npos) << load_error(d);

  d = copy("bad_format");
  edit_config(d, [](nlohmann::json& j) { j["quantization_config"]["sparsity_config"]["format"] = "sparse-rle"; });
  EXPECT_NE(load_error(d).find("sparse-rle"), std::string::npos) << load_error(d);

  // The value type config.json records must match the stored tensors (the export wrote f32).
  d = copy("values_mismatch");
  edit_config(d, [](nlohmann::json& j) { j["ressa_sparse"]["values"] = "bf16"; });
  EXPECT_NE(load_error(d).find("stores f32 values but config.json ressa_sparse.values says bf16"), std::string::npos)
      << load_error(d);
  d = copy("values_unknown");
  edit_config(d, [](nlohmann::json& j) { j["ressa_sparse"]["values"] = "fp8"; });
  EXPECT_NE(load_error(d).find("ressa_sparse.values must be"), std::string::npos) << load_error(d);
  d = copy("values_unrecorded");  // a compressed-tensors directory from another tool: no check
  edit_config(d, [](nlohmann::json& j) { j["ressa_sparse"].erase("values"); });
  EXPECT_EQ(load_error(d), "") << load_error(d);

  d = copy("quantized");
  edit_config(d, [](nlohmann::json& j) { j["quantization_config"]["config_groups"] = {{"group_0", {{"targets", {"Linear"}}}}}; });
  EXPECT_NE(load_error(d).find("config_groups"), std::string::npos) << load_error(d);

  // A corrupt bitmask: one extra bit set in the first layer's first row (popcount != values).
  d = copy("bad_bitmask");
  {
    std::map<std::string, std::pair<io::TensorInfo, std::vector<uint8_t>>> m;
    {
      auto f = io::SafetensorsFile::open(d + "/model.safetensors");
      for (auto& info : f.tensors()) m[info.name] = {info, std::vector<uint8_t>(f.data(info), f.data(info) + info.nbytes())};
    }
    auto& bm = m[first + ".bitmask"].second;
    int bit = 0;
    while (bm[0] & (1u << bit)) ++bit;
    ASSERT_LT(bit, 8);
    bm[0] |= static_cast<uint8_t>(1u << bit);
    std::vector<io::TensorView> views;
    for (auto& [k, v] : m) views.push_back({k, v.first.dtype, v.first.shape, v.second.data()});
    io::write_safetensors(d + "/model.safetensors", views);
  }
  const auto err = load_error(d);
  EXPECT_NE(err.find(first), std::string::npos) << err;

  d = copy("missing_part");
  {
    std::map<std::string, std::pair<io::TensorInfo, std::vector<uint8_t>>> m;
    {
      auto f = io::SafetensorsFile::open(d + "/model.safetensors");
      for (auto& info : f.tensors())
        if (info.name != first + ".row_offsets")
          m[info.name] = {info, std::vector<uint8_t>(f.data(info), f.data(info) + info.nbytes())};
    }
    std::vector<io::TensorView> views;
    for (auto& [k, v] : m) views.push_back({k, v.first.dtype, v.first.shape, v.second.data()});
    io::write_safetensors(d + "/model.safetensors", views);
  }
  EXPECT_NE(load_error(d).find(first + ".row_offsets"), std::string::npos) << load_error(d);
}
