// VQA split loading, tokenization and batching (see vqa_data.h).
#include "ressa/train/vqa_data.h"

#include <cctype>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include "ressa/core/error.h"
#include "ressa/core/runtime.h"
#include "ressa/data/image.h"

namespace ressa::train {
namespace {
// Splits like the Whitespace pre-tokenizer (\w+|[^\w\s]+), lower-cased: the words a
// WordLevel vocabulary must hold.
std::vector<std::string> words_of(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  int kind = 0;  // 0 none, 1 word chars, 2 punctuation
  for (char ch : text) {
    const unsigned char c = static_cast<unsigned char>(ch);
    const int k = std::isspace(c) ? 0 : (std::isalnum(c) || c == '_' || c >= 0x80) ? 1 : 2;
    if (k != kind && !cur.empty()) out.push_back(cur), cur.clear();
    if (k != 0) cur += static_cast<char>(std::tolower(c));
    kind = k;
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}
}  // namespace

io::Tokenizer build_tokenizer(const std::string& dir, const std::vector<std::string>& splits) {
  std::set<std::string> words;
  for (const auto& split : splits) {
    for (const auto& ex : data::read_split(dir, split)) {
      for (const auto* text : {&ex.question, &ex.answer})
        for (auto& w : words_of(*text)) words.insert(w);
    }
  }
  return io::Tokenizer::build_word_level(std::vector<std::string>(words.begin(), words.end()));
}

VqaSet load_vqa_split(const std::string& dir, const std::string& split, const io::Tokenizer& tok,
                      const io::LlavaConfig& cfg, int64_t limit, bool strict) {
  VqaSet set;
  set.examples = data::read_split(dir, split);
  const std::string where = dir + "/" + split + ".jsonl";
  RESSA_CHECK(!set.examples.empty(), "[load_vqa_split] ", where, ": no examples");
  if (limit > 0 && limit < set.size()) set.examples.resize(limit);
  const int64_t n_img_tokens = cfg.image_tokens();
  set.image_prefix = 1 + n_img_tokens;
  std::unordered_map<std::string, int64_t> image_row;
  std::vector<std::string> image_files;
  auto encode_checked = [&](const data::VqaExample& ex, const std::string& text) {
    auto ids = tok.encode(text);
    if (strict) {
      for (size_t i = 0; i < ids.size(); ++i)
        RESSA_CHECK(ids[i] != tok.unk_id(), "[load_vqa_split] ", where, ": example '", ex.id, "' uses the word '",
                    words_of(text)[i], "' that the model's tokenizer.json lacks");
    }
    return ids;
  };
  for (const auto& ex : set.examples) {
    auto [it, fresh] = image_row.emplace(ex.image, static_cast<int64_t>(image_files.size()));
    if (fresh) image_files.push_back(ex.image);
    set.image_of.push_back(it->second);
    std::vector<int64_t> p{tok.bos_id()};
    p.insert(p.end(), n_img_tokens, cfg.image_token_index);
    auto q = encode_checked(ex, ex.question);
    p.insert(p.end(), q.begin(), q.end());
    set.prompt.push_back(std::move(p));
    auto a = encode_checked(ex, ex.answer);
    RESSA_CHECK(!a.empty(), "[load_vqa_split] ", where, ": example '", ex.id, "' has an empty answer");
    a.push_back(tok.eos_id());
    set.answer.push_back(std::move(a));
    RESSA_CHECK(static_cast<int64_t>(set.prompt.back().size() + set.answer.back().size()) <=
                    cfg.text.max_position_embeddings,
                "[load_vqa_split] ", where, ": example '", ex.id, "' is ", set.prompt.back().size() + set.answer.back().size(),
                " tokens, longer than max_position_embeddings ", cfg.text.max_position_embeddings);
  }
  const int64_t S = cfg.vision.image_size, n = static_cast<int64_t>(image_files.size());
  set.images = torch::empty({n, 3, S, S}, torch::kUInt8);
  // Decode in parallel; the first error (in file order) is rethrown.
  std::vector<std::string> errors(n);
  const int workers = std::max(1, std::min(4, hardware_threads()));
  std::vector<std::thread> pool;
  for (int w = 0; w < workers; ++w) {
    pool.emplace_back([&, w] {
      for (int64_t i = w; i < n; i += workers) {
        try {
          data::Image img = data::load_image(dir + "/" + image_files[i]);
          if (img.width != S || img.height != S) img = data::resize_bilinear(img, static_cast<int>(S), static_cast<int>(S));
          auto hwc = torch::from_blob(img.rgb.data(), {S, S, 3}, torch::kUInt8);
          set.images[i].copy_(hwc.permute({2, 0, 1}));
        } catch (const std::exception& e) {
          errors[i] = e.what();
        }
      }
    });
  }
  for (auto& t : pool) t.join();
  for (auto& e : errors) RESSA_CHECK(e.empty(), e);
  return set;
}

torch::Tensor normalize_pixels(const torch::Tensor& u8, const io::LlavaConfig& cfg, bool blind) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(u8.device());
  if (blind) return torch::zeros(u8.sizes(), opts);
  auto mean = torch::tensor(cfg.image_mean, opts).view({1, 3, 1, 1});
  auto std = torch::tensor(cfg.image_std, opts).view({1, 3, 1, 1});
  return (u8.to(torch::kFloat32) / 255.0 - mean) / std;
}

namespace {
torch::Tensor gather_images(const VqaSet& set, const std::vector<int64_t>& idx) {
  std::vector<int64_t> rows;
  rows.reserve(idx.size());
  for (auto i : idx) rows.push_back(set.image_of.at(i));
  return set.images.index_select(0, torch::tensor(rows, torch::kInt64));
}
}  // namespace

namespace {
// One training sequence per list of examples of one image: the first example's whole prompt
// and answer, then for each later one its prompt after the shared image prefix and its answer.
// The loss mask marks the logits that predict answer tokens; pixels are the image's.
Batch fill_sequences(const VqaSet& set, const std::vector<std::vector<int64_t>>& seqs, const io::LlavaConfig& cfg,
                     const io::Tokenizer& tok, const torch::Device& device, bool blind) {
  const int64_t B = static_cast<int64_t>(seqs.size());
  const int64_t prefix = set.image_prefix;
  int64_t T = 0;
  for (const auto& seq : seqs) {
    int64_t len = prefix;
    for (auto i : seq) len += static_cast<int64_t>(set.prompt[i].size() + set.answer[i].size()) - prefix;
    T = std::max(T, len);
  }
  auto ids = torch::full({B, T}, tok.pad_id(), torch::kInt64);
  auto attn = torch::zeros({B, T}, torch::kInt64);
  auto lm = torch::zeros({B, T - 1}, torch::kFloat32);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto attn_a = attn.accessor<int64_t, 2>();
  auto lm_a = lm.accessor<float, 2>();
  std::vector<int64_t> rows;
  for (int64_t b = 0; b < B; ++b) {
    rows.push_back(set.image_of.at(seqs[b].front()));
    int64_t t = 0;
    for (size_t k = 0; k < seqs[b].size(); ++k) {
      const auto& p = set.prompt[seqs[b][k]];
      for (size_t j = k == 0 ? 0 : static_cast<size_t>(prefix); j < p.size(); ++j) ids_a[b][t] = p[j], attn_a[b][t++] = 1;
      for (auto id : set.answer[seqs[b][k]]) {
        ids_a[b][t] = id;
        attn_a[b][t] = 1;
        lm_a[b][t - 1] = 1.0f;  // logits at t-1 predict this answer token
        ++t;
      }
    }
  }
  Batch out;
  out.pixels = normalize_pixels(set.images.index_select(0, torch::tensor(rows, torch::kInt64)), cfg, blind).to(device);
  out.ids = ids.to(device);
  out.attn = attn.to(device);
  out.loss_mask = lm.to(device);
  return out;
}
}  // namespace

Batch make_train_batch(const VqaSet& set, const std::vector<int64_t>& idx, const io::LlavaConfig& cfg,
                       const io::Tokenizer& tok, const torch::Device& device, bool blind) {
  std::vector<std::vector<int64_t>> seqs;
  seqs.reserve(idx.size());
  for (auto i : idx) seqs.push_back({i});
  return fill_sequences(set, seqs, cfg, tok, device, blind);
}

std::vector<std::vector<int64_t>> pack_by_image(const VqaSet& set, int64_t max_tokens) {
  const int64_t prefix = set.image_prefix;
  std::vector<std::vector<int64_t>> units;
  std::vector<int64_t> open_unit_of;  // image row -> index of its unit still taking examples (-1: none)
  std::vector<int64_t> open_len;      // tokens of each unit
  for (int64_t i = 0; i < set.size(); ++i) {
    const int64_t row = set.image_of[i];
    if (row >= static_cast<int64_t>(open_unit_of.size())) open_unit_of.resize(row + 1, -1);
    const int64_t full = static_cast<int64_t>(set.prompt[i].size() + set.answer[i].size());
    int64_t u = open_unit_of[row];
    // The image prefix (<s> and the image tokens) is shared: a later turn adds its question
    // words and answer only.
    if (u >= 0 && open_len[u] + full - prefix <= max_tokens) {
      units[u].push_back(i);
      open_len[u] += full - prefix;
      continue;
    }
    open_unit_of[row] = static_cast<int64_t>(units.size());
    units.push_back({i});
    open_len.push_back(full);
  }
  return units;
}

Batch make_packed_batch(const VqaSet& set, const std::vector<std::vector<int64_t>>& units,
                        const std::vector<int64_t>& unit_idx, uint64_t order_seed, const io::LlavaConfig& cfg,
                        const io::Tokenizer& tok, const torch::Device& device) {
  std::vector<std::vector<int64_t>> order(unit_idx.size());
  for (size_t b = 0; b < unit_idx.size(); ++b) {
    order[b] = units.at(unit_idx[b]);
    std::mt19937_64 rng(order_seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(unit_idx[b] + 1)));
    for (int64_t k = static_cast<int64_t>(order[b].size()) - 1; k > 0; --k)
      std::swap(order[b][k], order[b][rng() % static_cast<uint64_t>(k + 1)]);
  }
  return fill_sequences(set, order, cfg, tok, device, false);
}

Batch make_prompt_batch(const VqaSet& set, const std::vector<int64_t>& idx, const io::LlavaConfig& cfg,
                        const io::Tokenizer& tok, const torch::Device& device, bool blind) {
  const int64_t B = static_cast<int64_t>(idx.size());
  int64_t T = 0;
  for (auto i : idx) T = std::max<int64_t>(T, set.prompt[i].size());
  auto ids = torch::full({B, T}, tok.pad_id(), torch::kInt64);
  auto attn = torch::zeros({B, T}, torch::kInt64);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto attn_a = attn.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = set.prompt[idx[b]];
    const int64_t off = T - static_cast<int64_t>(p.size());
    for (size_t j = 0; j < p.size(); ++j) ids_a[b][off + j] = p[j], attn_a[b][off + j] = 1;
  }
  Batch out;
  out.pixels = normalize_pixels(gather_images(set, idx), cfg, blind).to(device);
  out.ids = ids.to(device);
  out.attn = attn.to(device);
  return out;
}

torch::Tensor answer_cross_entropy(const torch::Tensor& logits, const Batch& batch) {
  const int64_t V = logits.size(-1);
  auto lg = logits.slice(1, 0, logits.size(1) - 1).reshape({-1, V});
  auto tgt = batch.ids.slice(1, 1).reshape({-1});
  auto per = torch::nn::functional::cross_entropy(
      lg, tgt, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone));
  auto m = batch.loss_mask.reshape({-1});
  return (per * m).sum() / m.sum().clamp_min(1.0);
}

}  // namespace ressa::train
