// Model tests: forward pass against golden logits from the independent python3-torch references
// (tests/reference/llava_reference.py: CLIP + Llama; llava_variants_reference.py: SigLIP + Qwen2,
// tied embeddings, fp16 weights, transformers >= 4.52 key layout), checkpoint round trips, and bad
// model directories.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "ressa/eval/generate.h"
#include "ressa/io/safetensors.h"
#include "ressa/io/tokenizer.h"
#include "ressa/model/checkpoint.h"

#include "temp_dir.h"

namespace fs = std::filesystem;
using namespace ressa;

namespace {
const std::string kFixture = std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/llava_tiny";
const std::string kGolden = std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/llava_tiny_golden.safetensors";

torch::Tensor golden(const io::SafetensorsFile& f, const std::string& name) {
  return model::to_torch(f.at(name), f.data(f.at(name)));
}

// The fixture model and the reference's inputs and logits.
struct Reference {
  model::LoadedModel lm;
  torch::Tensor pixels, ids, mask, logits;
};
Reference reference() {
  auto g = io::SafetensorsFile::open(kGolden);
  return {model::load_model(kFixture, torch::kCPU), golden(g, "pixels"), golden(g, "input_ids"),
          golden(g, "attention_mask"), golden(g, "logits")};
}
// max |got - want| over real (non-padding) positions; padded rows are never read.
double max_real_diff(const torch::Tensor& got, const torch::Tensor& want, const torch::Tensor& mask) {
  auto real = mask.to(torch::kBool).unsqueeze(-1).expand_as(got);
  return (got - want).abs().masked_select(real).max().item<double>();
}

std::string temp_copy_of_fixture() {
  static int copies = 0;
  const fs::path dir = ressa::test::process_temp_dir("model") / std::to_string(copies++);
  fs::create_directories(dir);
  for (auto& e : fs::directory_iterator(kFixture)) fs::copy_file(e.path(), dir / e.path().filename());
  return dir.string();
}

std::string error_of(const std::string& dir) {
  try {
    model::load_model(dir, torch::kCPU);
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

// Rewrites dir/model.safetensors with `edit` applied to the name->tensor map.
void rewrite(const std::string& dir, const std::function<void(std::map<std::string, torch::Tensor>&)>& edit) {
  std::map<std::string, torch::Tensor> m;
  {
    auto f = io::SafetensorsFile::open(dir + "/model.safetensors");
    for (auto& info : f.tensors()) m[info.name] = model::to_torch(info, f.data(info));
  }
  edit(m);
  std::vector<io::TensorView> views;
  for (auto& [k, t] : m) {
    t = t.contiguous();
    views.push_back({k, io::DType::F32, std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), t.data_ptr()});
  }
  io::write_safetensors(dir + "/model.safetensors", views);
}
}  // namespace

TEST(Llava, ForwardMatchesPythonReference) {
  auto r = reference();
  torch::NoGradGuard ng;
  auto got = r.lm.model->forward(r.pixels, r.ids, r.mask);
  ASSERT_EQ(got.sizes(), r.logits.sizes());
  const double diff = max_real_diff(got, r.logits, r.mask);
  EXPECT_LT(diff, 1e-4) << "max |logit difference| " << diff;
  EXPECT_GT(r.logits.abs().max().item<double>(), 0.5);  // the fixture is not trivially zero
}

// KV-cache decoding (what eval's generation uses): a prefix, then one position at a time, gives
// the reference logits at every real position; last_only returns just the last one.
TEST(Llava, IncrementalDecodingMatchesPythonReference) {
  auto r = reference();
  auto& m = r.lm.model;
  torch::NoGradGuard ng;
  auto embeds = m->embed(r.ids, m->image_features(r.pixels));
  const int64_t T = r.ids.size(1), split = T - 3;
  ASSERT_GT(split, 0);
  model::KvCache cache;
  std::vector<torch::Tensor> parts{m->decode(embeds.slice(1, 0, split), r.mask.slice(1, 0, split), cache, false)};
  EXPECT_EQ(cache.length(), split);
  for (int64_t t = split; t < T; ++t)
    parts.push_back(m->decode(embeds.slice(1, t, t + 1), r.mask.slice(1, t, t + 1), cache, false));
  EXPECT_EQ(cache.length(), T);
  auto got = torch::cat(parts, 1);
  ASSERT_EQ(got.sizes(), r.logits.sizes());
  const double diff = max_real_diff(got, r.logits, r.mask);
  EXPECT_LT(diff, 1e-4) << "max |logit difference| " << diff;

  model::KvCache fresh;
  auto last = m->decode(embeds, r.mask, fresh, /*last_only=*/true);
  ASSERT_EQ(last.size(1), 1);
  EXPECT_LT((last.select(1, 0) - r.logits.select(1, T - 1)).abs().max().item<double>(), 1e-4);
  model::KvCache bad;
  EXPECT_THROW(m->decode(embeds, r.mask.slice(1, 0, T - 1), bad, false), std::invalid_argument);
}

TEST(Llava, CheckpointRoundTripKeepsLogits) {
  auto r = reference();
  auto out = temp_copy_of_fixture() + "_saved";
  model::save_model(out, r.lm.model);
  auto lm2 = model::load_model(out, torch::kCPU);
  torch::NoGradGuard ng;
  auto a = r.lm.model->forward(r.pixels, r.ids, r.mask);
  auto b = lm2.model->forward(r.pixels, r.ids, r.mask);
  EXPECT_TRUE(torch::equal(a, b));
  EXPECT_EQ(model::model_fingerprint(kFixture), model::model_fingerprint(out));
  fs::remove_all(out);
}

TEST(Llava, Fp16WeightsReadInPlaceOrKeptIn16BitGiveTheSameModel) {
  // The llava-1.5 layout fixture is fp16 on disk. Loaded as usual its Linear weights are fp32
  // copies; with map_weights they are views of the file, with stored_dtype 16-bit copies: same
  // values, and the same logits (prefill through widened BLAS, decode-sized steps through
  // half_gemv) within float rounding.
  const std::string dir = std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/llava15_layout";
  model::LoadOptions mapped, stored;
  mapped.map_weights = true;
  stored.stored_dtype = true;
  auto a = model::load_model(dir, torch::kCPU), b = model::load_model(dir, torch::kCPU, mapped),
       c = model::load_model(dir, torch::kCPU, stored);
  auto lb = b.model->linears(), lc = c.model->linears();
  size_t i = 0;
  for (auto& [name, lin] : a.model->linears()) {
    EXPECT_EQ(lin->weight.scalar_type(), torch::kFloat32) << name;
    EXPECT_EQ(lb[i].second->weight.scalar_type(), torch::kHalf) << name;
    EXPECT_EQ(lc[i].second->weight.scalar_type(), torch::kHalf) << name;
    EXPECT_TRUE(torch::equal(lin->weight, lb[i].second->weight.to(torch::kFloat32))) << name;
    EXPECT_TRUE(torch::equal(lin->weight, lc[i].second->weight.to(torch::kFloat32))) << name;
    ++i;
  }
  torch::NoGradGuard ng;
  torch::manual_seed(3);
  const auto& cfg = a.model->config;
  auto pixels = torch::randn({1, 3, cfg.vision.image_size, cfg.vision.image_size});
  std::vector<int64_t> prompt{1, 3148, 1001};
  prompt.insert(prompt.begin() + 1, cfg.image_tokens(), cfg.image_token_index);
  auto ids = torch::tensor(prompt).unsqueeze(0);
  auto mask = torch::ones_like(ids);
  auto la = a.model->forward(pixels, ids, mask);
  EXPECT_TRUE(torch::allclose(la, b.model->forward(pixels, ids, mask), 1e-5, 1e-5));
  EXPECT_TRUE(torch::allclose(la, c.model->forward(pixels, ids, mask), 1e-5, 1e-5));
  // One decode step (a single row of x: the half_gemv path) after the prompt.
  model::KvCache ca, cb;
  a.model->decode(a.model->embed(ids, a.model->image_features(pixels)), mask, ca, true);
  b.model->decode(b.model->embed(ids, b.model->image_features(pixels)), mask, cb, true);
  auto next = torch::tensor({{42}});
  auto ea = a.model->language_model->model->embed_tokens(next), eb = b.model->language_model->model->embed_tokens(next);
  auto sa = a.model->decode(ea, torch::ones({1, 1}, torch::kInt64), ca, true);
  auto sb = b.model->decode(eb, torch::ones({1, 1}, torch::kInt64), cb, true);
  EXPECT_TRUE(torch::allclose(sa, sb, 1e-5, 1e-5)) << (sa - sb).abs().max().item<float>();
}

// SigLIP + Qwen2 (llava-interleave / onevision style) in the transformers >= 4.52 key layout.
TEST(LlavaVariants, Qwen2SiglipMatchesPythonReference) {
  const std::string dir = std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/llava_qwen2_siglip";
  auto g = io::SafetensorsFile::open(std::string(RESSA_SOURCE_DIR) + "/tests/fixtures/llava_qwen2_siglip_golden.safetensors");
  auto lm = model::load_model(dir, torch::kCPU);
  const auto& c = lm.model->config;
  EXPECT_TRUE(c.vision.is_siglip());
  EXPECT_EQ(c.vision.layer_norm_eps, 1e-6);  // SiglipVisionConfig's default: config.json omits it
  EXPECT_EQ(c.text.rms_norm_eps, 1e-6);      // Qwen2Config's default
  EXPECT_EQ(c.text.head_dim(), 6);
  EXPECT_TRUE(c.text.qkv_bias);
  EXPECT_FALSE(c.text.o_bias);
  EXPECT_TRUE(lm.model->language_model->tied);
  EXPECT_EQ(c.image_tokens(), 4);  // 19x19 pixels, 8x8 patches: the conv drops the remainder
  EXPECT_EQ(c.key_layout, io::KeyLayout::kTransformers5);
  auto pixels = golden(g, "pixels"), ids = golden(g, "input_ids"), mask = golden(g, "attention_mask");
  auto want = golden(g, "logits");
  torch::NoGradGuard ng;
  auto got = lm.model->forward(pixels, ids, mask);
  ASSERT_EQ(got.sizes(), want.sizes());
  const double diff = max_real_diff(got, want, mask);
  EXPECT_LT(diff, 1e-4) << "max |logit difference| " << diff;
  EXPECT_GT(want.abs().max().item<double>(), 0.5);

  // Greedy generation with the KV cache gives the reference's tokens (the reference recomputes
  // the whole sequence each step; its smallest top-2 logit margin is 0.089).
  const auto row = ids[0];
  const std::vector<int64_t> prompt(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
  eval::GenerateOptions go;
  go.max_new_tokens = 8;
  const auto gen = eval::generate_greedy(lm.model, prompt, pixels.slice(0, 0, 1), go, torch::kCPU);
  const auto greedy = golden(g, "greedy_ids");
  EXPECT_EQ(gen.output_ids,
            std::vector<int64_t>(greedy.data_ptr<int64_t>(), greedy.data_ptr<int64_t>() + greedy.numel()));
  go.eos_ids = {gen.output_ids[2]};  // stops after emitting an end-of-sequence id, keeping it
  EXPECT_EQ(eval::generate_greedy(lm.model, prompt, pixels.slice(0, 0, 1), go, torch::kCPU).output_ids.size(),
            size_t(std::find(gen.output_ids.begin(), gen.output_ids.end(), gen.output_ids[2]) - gen.output_ids.begin() + 1));

  // Written back in the layout it was read in, lm_head stored once (as embed_tokens).
  const std::string out = (ressa::test::process_temp_dir("model") / "qwen2_siglip_saved").string();
  model::save_model(out, lm.model);
  auto f = io::SafetensorsFile::open(out + "/model.safetensors");
  EXPECT_NE(f.find("model.language_model.embed_tokens.weight"), nullptr);
  EXPECT_NE(f.find("model.vision_tower.vision_model.embeddings.patch_embedding.bias"), nullptr);
  EXPECT_EQ(f.find("language_model.model.embed_tokens.weight"), nullptr);
  EXPECT_EQ(f.find("lm_head.weight"), nullptr);
  EXPECT_EQ(f.at("model.language_model.embed_tokens.weight").dtype, io::DType::F16);  // stays fp16
  EXPECT_EQ(io::resolve_config(out + "/config.json").torch_dtype, "float16");
  auto back = model::load_model(out, torch::kCPU);
  EXPECT_TRUE(torch::equal(back.model->forward(pixels, ids, mask), got));
  fs::remove_all(out);
}

TEST(Llava, ParameterNamesFollowLlavaHf) {
  auto lm = model::load_model(kFixture, torch::kCPU);
  std::set<std::string> names;
  for (auto& [n, t] : model::checkpoint_tensors(lm.model)) names.insert(n);
  for (const char* k : {"vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight",
                        "vision_tower.vision_model.embeddings.patch_embedding.weight",
                        "vision_tower.vision_model.pre_layrnorm.weight", "multi_modal_projector.linear_1.weight",
                        "language_model.model.layers.0.mlp.gate_proj.weight", "language_model.lm_head.weight",
                        "language_model.model.embed_tokens.weight"})
    EXPECT_TRUE(names.count(k)) << k;
  // vision_feature_layer -2 of 2 blocks: only block 0 reaches the output, so only it is a target.
  EXPECT_EQ(lm.model->config.vision_layers_used(), 1);
  EXPECT_EQ(lm.model->vision_block_linears().size(), 1u * 6u);
  for (const auto& [name, lin] : lm.model->vision_block_linears())
    EXPECT_EQ(name.rfind("vision_tower.vision_model.encoder.layers.0.", 0), 0u) << name;
  EXPECT_EQ(lm.model->language_block_linears().size(), 2u * 7u);
}

TEST(Llava, BadModelDirectoriesGiveClearErrors) {
  {
    auto d = temp_copy_of_fixture();
    rewrite(d, [](auto& m) { m.erase("language_model.lm_head.weight"); });
    auto e = error_of(d);
    EXPECT_NE(e.find("missing tensors: language_model.lm_head.weight"), std::string::npos) << e;
    fs::remove_all(d);
  }
  {
    auto d = temp_copy_of_fixture();
    rewrite(d, [](auto& m) { m["language_model.extra.weight"] = torch::zeros({2}); });
    auto e = error_of(d);
    EXPECT_NE(e.find("unexpected tensors: language_model.extra.weight"), std::string::npos) << e;
    fs::remove_all(d);
  }
  {
    auto d = temp_copy_of_fixture();
    rewrite(d, [](auto& m) { m["multi_modal_projector.linear_1.weight"] = torch::zeros({3, 3}); });
    auto e = error_of(d);
    EXPECT_NE(e.find("multi_modal_projector.linear_1.weight has shape [3, 3], config.json expects [16, 16]"),
              std::string::npos)
        << e;
    fs::remove_all(d);
  }
  {
    auto d = temp_copy_of_fixture();
    rewrite(d, [](auto& m) { m["language_model.model.norm.weight"][0] = std::nan(""); });
    EXPECT_NE(error_of(d).find("NaN or Inf"), std::string::npos);
    fs::remove_all(d);
  }
  {
    auto d = temp_copy_of_fixture();
    std::ofstream(d + "/config.json") << R"({"model_type": "llava", "vision_config": {"hidden_size": 15, "num_attention_heads": 2}, "text_config": {}})";
    auto e = error_of(d);
    EXPECT_NE(e.find("not divisible by num_attention_heads"), std::string::npos) << e;
    fs::remove_all(d);
  }
  {
    auto d = temp_copy_of_fixture();
    std::ofstream(d + "/config.json") << "{ not json";
    EXPECT_NE(error_of(d).find("not valid JSON"), std::string::npos);
    fs::remove_all(d);
  }
  EXPECT_NE(error_of("/nonexistent/model").find("model directory not found"), std::string::npos);
}

// The teachers shipped in models/ load and run: a forward pass on a blank image gives finite
// logits of the vocabulary's width, and greedy generation stops within a few tokens.
TEST(ShippedModels, LoadAndRun) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(std::string(RESSA_SOURCE_DIR) + "/models")) {
    if (!e.is_directory()) continue;
    SCOPED_TRACE(e.path().string());
    auto lm = model::load_model(e.path().string(), torch::kCPU);
    const auto& c = lm.model->config;
    const auto tok = io::Tokenizer::load_dir(e.path().string());
    std::vector<int64_t> prompt{tok.bos_id()};
    prompt.insert(prompt.end(), c.image_tokens(), c.image_token_index);
    for (int64_t id : tok.encode("what color is the shape ?")) prompt.push_back(id);
    torch::NoGradGuard ng;
    const auto pixels = torch::zeros({1, 3, c.vision.image_size, c.vision.image_size});
    auto logits = lm.model->forward(pixels, torch::tensor(prompt).unsqueeze(0), torch::ones({1, int64_t(prompt.size())}, torch::kInt64));
    EXPECT_EQ(logits.size(-1), c.text.vocab_size);
    EXPECT_TRUE(torch::isfinite(logits).all().item<bool>());
    eval::GenerateOptions go;
    go.max_new_tokens = 6;
    EXPECT_FALSE(eval::generate_greedy(lm.model, prompt, pixels, go, torch::kCPU).output_ids.empty());
    ++n;
  }
  EXPECT_GE(n, 2);
}
