// VQA split loading, tokenization and batching (see vqa_data.h).
#include "ressa/train/vqa_data.h"

#include <algorithm>
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

VqaSet build_vqa_set(const data::Samples& samples, const std::vector<int64_t>& pick, const data::Processor& proc,
                     const io::LlavaConfig& cfg, bool strict) {
  const std::string& where = samples.where;
  std::vector<int64_t> order = pick;
  if (order.empty())
    for (int64_t i = 0; i < static_cast<int64_t>(samples.items.size()); ++i) order.push_back(i);
  RESSA_CHECK(!order.empty(), "[data] ", where, ": no examples");
  const io::Tokenizer& tok = proc.tokenizer();
  const bool word_level = strict && tok.model_type() == "WordLevel" && tok.has_unk();
  VqaSet set;
  set.norm = proc.pixel_norm();
  std::unordered_map<std::string, int64_t> image_row;
  std::vector<std::string> image_files;
  for (int64_t i : order) {
    const data::Sample& s = samples.items.at(static_cast<size_t>(i));
    const data::Conversation& c = s.conversation;
    if (word_level) {  // name the word a WordLevel vocabulary lacks (one id per word)
      for (const auto& turn : c.turns) {
        const auto ids = tok.encode(turn.text);
        const auto words = words_of(turn.text);
        for (size_t k = 0; k < ids.size(); ++k)
          RESSA_CHECK(ids[k] != tok.unk_id(), "[data] ", where, ": example '", c.id, "' uses the word '",
                      k < words.size() ? words[k] : std::string("?"), "' that the model's tokenizer.json lacks");
      }
    }
    data::EncodedConversation e = proc.encode(c, where + ": example '" + c.id + "'");
    RESSA_CHECK(static_cast<int64_t>(e.ids.size()) <= cfg.text.max_position_embeddings, "[data] ", where,
                ": example '", c.id, "' is ", e.ids.size(), " tokens, longer than max_position_embeddings ",
                cfg.text.max_position_embeddings);
    auto [it, fresh] = image_row.emplace(s.image_path, static_cast<int64_t>(image_files.size()));
    if (fresh) image_files.push_back(s.image_path);
    set.image_of.push_back(it->second);
    set.max_answer_tokens = std::max(set.max_answer_tokens, e.first_answer_tokens);
    set.prompt.push_back(std::move(e.prompt));
    set.sequence.push_back(std::move(e.ids));
    set.target.push_back(std::move(e.target));
    set.examples.push_back({c.id, s.image_path, c.turns.at(0).text, c.turns.at(1).text, s.family, {}});
  }
  // The prefix through the image tokens: what packing shares between examples of one image.
  const auto& first = set.sequence.front();
  int64_t prefix = 0;
  for (int64_t t = 0; t < static_cast<int64_t>(first.size()); ++t)
    if (first[t] == cfg.image_token_index) prefix = t + 1;
  set.image_prefix = prefix;

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
          data::Image img = proc.model_image(data::load_image(image_files[i]));
          RESSA_CHECK(img.width == S && img.height == S, "[data] ", image_files[i], ": the image processor gives ",
                      img.width, "x", img.height, " pixels, the vision tower takes ", S, "x", S);
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

VqaSet load_vqa_set(const data::DataSource& source, const std::string& split, const data::Processor& proc,
                    const io::LlavaConfig& cfg, int64_t limit, bool strict) {
  data::Samples samples = data::read_samples(source, split);
  RESSA_CHECK(!samples.items.empty(), "[data] ", samples.where, ": no examples");
  if (limit > 0 && limit < static_cast<int64_t>(samples.items.size())) samples.items.resize(limit);
  return build_vqa_set(samples, {}, proc, cfg, strict);
}

VqaSet load_vqa_split(const std::string& dir, const std::string& split, const io::Tokenizer& tok,
                      const io::LlavaConfig& cfg, int64_t limit, bool strict) {
  return load_vqa_set(data::DataSource{dir, ""}, split, data::Processor::for_ressa_model(tok, cfg), cfg, limit, strict);
}

torch::Tensor normalize_pixels(const torch::Tensor& u8, const data::PixelNorm& norm, bool blind) {
  auto opts = torch::TensorOptions().dtype(torch::kFloat32).device(u8.device());
  if (blind) return torch::zeros(u8.sizes(), opts);
  // data::PixelNorm::apply in torch: float32(double(v) * s), then (x - mean) / std in float32.
  auto x = norm.do_rescale ? (u8.to(torch::kFloat64) * norm.rescale_factor).to(torch::kFloat32) : u8.to(torch::kFloat32);
  if (!norm.do_normalize) return x;
  auto mean = torch::tensor(std::vector<float>(norm.mean.begin(), norm.mean.end()), opts).view({1, 3, 1, 1});
  auto std = torch::tensor(std::vector<float>(norm.std.begin(), norm.std.end()), opts).view({1, 3, 1, 1});
  return (x - mean) / std;
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
int64_t pad_of(const io::Tokenizer& tok) { return tok.has_pad() ? tok.pad_id() : 0; }  // masked out anyway

// One training sequence per list of examples of one image: the first example's whole sequence,
// then each later one's after the shared image prefix. The loss mask marks the logits that
// predict assistant tokens; pixels are the image's.
Batch fill_sequences(const VqaSet& set, const std::vector<std::vector<int64_t>>& seqs, const io::Tokenizer& tok,
                     const torch::Device& device, bool blind) {
  const int64_t B = static_cast<int64_t>(seqs.size());
  const int64_t prefix = set.image_prefix;
  int64_t T = 0;
  for (const auto& seq : seqs) {
    int64_t len = prefix;
    for (auto i : seq) len += static_cast<int64_t>(set.sequence[i].size()) - prefix;
    T = std::max(T, len);
  }
  auto ids = torch::full({B, T}, pad_of(tok), torch::kInt64);
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
      const auto& s = set.sequence[seqs[b][k]];
      const auto& tg = set.target[seqs[b][k]];
      for (size_t j = k == 0 ? 0 : static_cast<size_t>(prefix); j < s.size(); ++j, ++t) {
        ids_a[b][t] = s[j];
        attn_a[b][t] = 1;
        if (tg[j] && t > 0) lm_a[b][t - 1] = 1.0f;  // logits at t-1 predict this assistant token
      }
    }
  }
  Batch out;
  out.pixels = normalize_pixels(set.images.index_select(0, torch::tensor(rows, torch::kInt64)), set.norm, blind).to(device);
  out.ids = ids.to(device);
  out.attn = attn.to(device);
  out.loss_mask = lm.to(device);
  return out;
}
}  // namespace

Batch make_train_batch(const VqaSet& set, const std::vector<int64_t>& idx, const io::Tokenizer& tok, const torch::Device& device, bool blind) {
  std::vector<std::vector<int64_t>> seqs;
  seqs.reserve(idx.size());
  for (auto i : idx) seqs.push_back({i});
  return fill_sequences(set, seqs, tok, device, blind);
}

std::vector<std::vector<int64_t>> pack_by_image(const VqaSet& set, int64_t max_tokens) {
  const int64_t prefix = set.image_prefix;
  std::vector<std::vector<int64_t>> units;
  std::vector<int64_t> open_unit_of;  // image row -> index of its unit still taking examples (-1: none)
  std::vector<int64_t> open_len;      // tokens of each unit
  for (int64_t i = 0; i < set.size(); ++i) {
    const int64_t row = set.image_of[i];
    if (row >= static_cast<int64_t>(open_unit_of.size())) open_unit_of.resize(row + 1, -1);
    const int64_t full = static_cast<int64_t>(set.sequence[i].size());
    RESSA_CHECK(std::equal(set.sequence[i].begin(), set.sequence[i].begin() + prefix, set.sequence[0].begin()),
                "[pack_by_image] example '", set.examples[i].id, "' does not start with the shared image prefix "
                "(packing needs ressa's prompt layout)");
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
                        const std::vector<int64_t>& unit_idx, uint64_t order_seed, const io::Tokenizer& tok,
                        const torch::Device& device) {
  std::vector<std::vector<int64_t>> order(unit_idx.size());
  for (size_t b = 0; b < unit_idx.size(); ++b) {
    order[b] = units.at(unit_idx[b]);
    std::mt19937_64 rng(order_seed ^ (0x9E3779B97F4A7C15ull * static_cast<uint64_t>(unit_idx[b] + 1)));
    for (int64_t k = static_cast<int64_t>(order[b].size()) - 1; k > 0; --k)
      std::swap(order[b][k], order[b][rng() % static_cast<uint64_t>(k + 1)]);
  }
  return fill_sequences(set, order, tok, device, false);
}

Batch make_prompt_batch(const VqaSet& set, const std::vector<int64_t>& idx, const io::Tokenizer& tok, const torch::Device& device, bool blind) {
  const int64_t B = static_cast<int64_t>(idx.size());
  int64_t T = 0;
  for (auto i : idx) T = std::max<int64_t>(T, set.prompt[i].size());
  auto ids = torch::full({B, T}, pad_of(tok), torch::kInt64);
  auto attn = torch::zeros({B, T}, torch::kInt64);
  auto ids_a = ids.accessor<int64_t, 2>();
  auto attn_a = attn.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    const auto& p = set.prompt[idx[b]];
    const int64_t off = T - static_cast<int64_t>(p.size());
    for (size_t j = 0; j < p.size(); ++j) ids_a[b][off + j] = p[j], attn_a[b][off + j] = 1;
  }
  Batch out;
  out.pixels = normalize_pixels(gather_images(set, idx), set.norm, blind).to(device);
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
