// Tests for ressa/train/vqa_data packing: questions sharing an image become one sequence whose
// tokens, loss mask and image are exactly those of the separate examples, and packing changes
// neither the loss of a model on them (per answer token) nor what a unit holds.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <map>
#include <set>

#include "ressa/data/shapes.h"
#include "ressa/io/config.h"
#include "ressa/model/llava.h"
#include "ressa/train/vqa_data.h"

namespace fs = std::filesystem;
using namespace ressa;

namespace {
struct Fixture {
  fs::path root;
  io::Tokenizer tok;
  io::LlavaConfig cfg;
  train::VqaSet set;
  Fixture() {
    root = fs::temp_directory_path() / ("ressa_test_train_data_" + std::to_string(getpid()));
    fs::remove_all(root);
    data::ShapesOptions so;
    so.train = 12, so.val = 2, so.test = 2, so.image_size = 32, so.threads = 1, so.seed = 4;
    data::generate_shapes(root.string(), so);  // 12 questions + extras + 12 captions
    tok = train::build_tokenizer(root.string(), {"train", "val", "test"});
    cfg = io::preset_config("tiny");
    cfg.text.vocab_size = tok.vocab_size();
    cfg.image_token_index = tok.image_id();
    set = train::load_vqa_split(root.string(), "train", tok, cfg);
  }
  ~Fixture() { fs::remove_all(root); }
};
Fixture& fx() {
  static Fixture f;
  return f;
}
}  // namespace

TEST(TrainData, PackByImageGroupsEveryExampleOnce) {
  auto& f = fx();
  auto units = train::pack_by_image(f.set, f.cfg.text.max_position_embeddings);
  ASSERT_EQ(units.size(), 12u);  // one sequence per image: all fit in max_position_embeddings
  std::set<int64_t> seen;
  for (const auto& u : units) {
    ASSERT_GE(u.size(), 3u);  // question, >= 1 extra question, caption
    for (auto i : u) {
      EXPECT_TRUE(seen.insert(i).second);
      EXPECT_EQ(f.set.image_of[i], f.set.image_of[u[0]]);
    }
  }
  EXPECT_EQ(static_cast<int64_t>(seen.size()), f.set.size());

  // A length cap splits an image's questions into several units, none longer than the cap.
  const int64_t prefix = 1 + f.cfg.image_tokens();
  const int64_t cap = prefix + 12;
  auto small = train::pack_by_image(f.set, cap);
  EXPECT_GT(small.size(), units.size());
  for (const auto& u : small) {
    int64_t len = prefix;
    for (auto i : u) len += static_cast<int64_t>(f.set.sequence[i].size()) - prefix;
    EXPECT_TRUE(len <= cap || u.size() == 1) << len;
  }
}

TEST(TrainData, PackedBatchHoldsTheSameTokensAndLoss) {
  auto& f = fx();
  auto units = train::pack_by_image(f.set, f.cfg.text.max_position_embeddings);
  const std::vector<int64_t> pick = {0, 5, 11};
  auto packed = train::make_packed_batch(f.set, units, pick, 77, f.tok, torch::kCPU);
  const int64_t prefix = 1 + f.cfg.image_tokens();
  for (size_t b = 0; b < pick.size(); ++b) {
    const auto& u = units[pick[b]];
    auto single = train::make_train_batch(f.set, u, f.tok, torch::kCPU);
    // Same image as each separate example.
    EXPECT_TRUE(torch::equal(packed.pixels[b], single.pixels[0]));
    // The packed row is the image prefix followed by every example's question+answer, in some
    // order: recover that multiset of turns by matching each example's suffix.
    auto row = packed.ids[b];
    auto att = packed.attn[b];
    const int64_t len = att.sum().item<int64_t>();
    int64_t expect_len = prefix, answer_tokens = 0;
    std::multiset<std::vector<int64_t>> turns_expected, turns_found;
    for (auto i : u) {
      std::vector<int64_t> t(f.set.sequence[i].begin() + prefix, f.set.sequence[i].end());
      expect_len += static_cast<int64_t>(t.size());
      for (uint8_t m : f.set.target[i]) answer_tokens += m;
      turns_expected.insert(t);
    }
    ASSERT_EQ(len, expect_len);
    for (int64_t t = 0; t < prefix; ++t) EXPECT_EQ(row[t].item<int64_t>(), f.set.sequence[u[0]][t]);
    // Turns end at </s>; the loss mask marks exactly the answer tokens (+ </s>).
    std::vector<int64_t> cur;
    for (int64_t t = prefix; t < len; ++t) {
      cur.push_back(row[t].item<int64_t>());
      if (cur.back() == f.tok.eos_id()) turns_found.insert(cur), cur.clear();
    }
    EXPECT_TRUE(cur.empty());
    EXPECT_EQ(turns_found, turns_expected);
    EXPECT_EQ(packed.loss_mask[b].sum().item<double>(), static_cast<double>(answer_tokens));
    EXPECT_EQ(single.loss_mask.sum().item<double>(), static_cast<double>(answer_tokens));
  }
  // A unit's order does not depend on the rest of the batch (data-parallel shards see other
  // neighbours than one process does).
  auto alone = train::make_packed_batch(f.set, units, {5}, 77, f.tok, torch::kCPU);
  const int64_t n5 = alone.attn[0].sum().item<int64_t>();
  EXPECT_TRUE(torch::equal(alone.ids[0].slice(0, 0, n5), packed.ids[1].slice(0, 0, n5)));
  // The question order depends on the seed (and only on it).
  auto again = train::make_packed_batch(f.set, units, pick, 77, f.tok, torch::kCPU);
  EXPECT_TRUE(torch::equal(again.ids, packed.ids));
  bool differs = false;
  for (uint64_t s = 1; s < 20 && !differs; ++s)
    differs = !torch::equal(train::make_packed_batch(f.set, units, pick, s, f.tok, torch::kCPU).ids, packed.ids);
  EXPECT_TRUE(differs);
}

TEST(TrainData, FirstTurnOfAPackedSequenceMatchesTheUnpackedExample) {
  // Causal attention: the logits over the first turn of a packed sequence equal those of the
  // same example alone, so packing does not change what evaluation (one question) sees.
  auto& f = fx();
  torch::manual_seed(0);
  model::Llava net(f.cfg);
  net->eval();
  torch::NoGradGuard ng;
  auto units = train::pack_by_image(f.set, f.cfg.text.max_position_embeddings);
  auto packed = train::make_packed_batch(f.set, units, {3}, 5, f.tok, torch::kCPU);
  // Which example came first? Find the one whose prompt+answer prefixes the packed row.
  const auto row = packed.ids[0];
  for (auto i : units[3]) {
    const auto& seq = f.set.sequence[i];
    const int64_t n = static_cast<int64_t>(seq.size());
    bool match = true;
    for (int64_t t = 0; t < n && match; ++t) match = row[t].item<int64_t>() == seq[t];
    if (!match) continue;
    auto single = train::make_train_batch(f.set, {i}, f.tok, torch::kCPU);
    auto lp = net->forward(packed.pixels, packed.ids, packed.attn).slice(1, 0, n);
    auto ls = net->forward(single.pixels, single.ids, single.attn).slice(1, 0, n);
    EXPECT_TRUE(torch::allclose(lp, ls, 1e-5, 1e-5));
    return;
  }
  FAIL() << "no example of the unit starts the packed sequence";
}

TEST(TrainData, BatchPixelsAreTheProcessorsPixels) {
  // Sets keep uint8 images and normalize per batch with torch; the floats must be the ones the
  // processor (and so `ressa generate`) gives, bit for bit.
  const fs::path shapes = fs::path(RESSA_SOURCE_DIR) / "models" / "shapes-small";
  const auto cfg = io::load_config((shapes / "config.json").string());
  const auto proc = data::Processor::load_dir(shapes.string(), cfg);
  const int side = static_cast<int>(cfg.vision.image_size);
  data::Image img{side + 9, side - 5, {}};
  img.rgb.resize(size_t(img.width) * size_t(img.height) * 3);
  for (size_t i = 0; i < img.rgb.size(); ++i) img.rgb[i] = uint8_t(i * 13 + 5);
  const data::Image small = proc.model_image(img);
  const int64_t S = cfg.vision.image_size;
  ASSERT_EQ(small.width, S);
  auto u8 = torch::from_blob(const_cast<uint8_t*>(small.rgb.data()), {1, S, S, 3}, torch::kUInt8).permute({0, 3, 1, 2});
  const auto got = train::normalize_pixels(u8.contiguous(), proc.pixel_norm(), false);
  const auto want = proc.pixels(img);
  auto w = torch::from_blob(const_cast<float*>(want.pixels.data()), {1, 3, S, S}, torch::kFloat32);
  EXPECT_TRUE(torch::equal(got, w));
  EXPECT_EQ(train::normalize_pixels(u8.contiguous(), proc.pixel_norm(), true).abs().sum().item<float>(), 0.0f);
}
