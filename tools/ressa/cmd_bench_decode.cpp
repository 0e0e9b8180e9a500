// `ressa bench decode`: greedy decoding at batch 1 of one model, dense (fp32 weights through
// BLAS) against its compressed form (every pruned block Linear through the sparse kernels), in
// one run: prefill and decode tokens/s, the weight bytes each decoded token reads, the bandwidth
// that achieves, and the machine's own streaming-read bandwidth as the limit (docs/benchmarks.md
// "Decoding"). The model is a real directory or random weights from a config.json; it is pruned
// by magnitude in memory when asked. Both sides must choose the same tokens (fp32 values).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <random>
#include <thread>

#include "bench_util.h"
#include "common.h"
#include "ressa/core/error.h"
#include "ressa/eval/generate.h"
#include "ressa/io/config.h"
#include "ressa/model/checkpoint.h"
#include "ressa/prune/mask.h"
#include "ressa/prune/pattern.h"
#include "ressa/sparse/kernels.h"

namespace ressa::cli {
namespace {

struct DecodeFlags {
  ComputeFlags c;
  std::string model, config, pattern, dtype = "float32";
  double sparsity = 0;
  int64_t prompt_tokens = 128, new_tokens = 64;
  uint64_t seed = 0;
  CLI::Option *o_s = nullptr, *o_p = nullptr, *o_model = nullptr, *o_config = nullptr;
};

// The model to measure: a model directory, or random weights (Kaiming, as a fresh Llava) of a config.
model::Llava build_model(const DecodeFlags& f) {
  if (!f.model.empty()) return model::load_model(f.model, torch::kCPU).model;
  torch::manual_seed(static_cast<int64_t>(f.seed));
  return model::Llava(io::load_config(f.config));
}

// Prunes every block Linear of both towers by magnitude (per output row) to `p`.
void prune_by_magnitude(model::Llava& net, const prune::SparsityPattern& p) {
  torch::NoGradGuard ng;
  for (auto group : {net->vision_block_linears(), net->language_block_linears()})
    for (auto& [name, lin] : group) {
      auto keep = prune::mask_for(lin->weight.abs(), p, prune::Granularity::Row);
      lin->weight.mul_(keep.to(lin->weight.scalar_type()));
      lin->set_mask(keep);
    }
}

// Gives every pruned Linear its compressed copy (bitmask, or N:M for a pattern) with `values`;
// returns the compressed bytes of the language model's (what a decoded token reads).
double attach_compressed(model::Llava& net, const prune::SparsityPattern& p, sparse::ValueType values) {
  double language_bytes = 0;
  auto language = net->language_block_linears();
  std::set<const model::LinearImpl*> in_language;
  for (auto& [name, lin] : language) in_language.insert(lin.get());
  for (auto group : {net->vision_block_linears(), language})
    for (auto& [name, lin] : group) {
      if (!lin->mask().defined()) continue;
      auto w = lin->weight.detach().contiguous();
      auto sw = std::make_shared<model::SparseWeight>();
      if (p.is_nm())
        sw->matrix = sparse::NMMatrix::from_dense(w.data_ptr<float>(), w.size(0), w.size(1), p.n, p.m, values);
      else
        sw->matrix = sparse::BitmaskMatrix::from_dense(w.data_ptr<float>(), w.size(0), w.size(1), values);
      const double bytes = std::visit([](const auto& m) { return double(m.bytes()); }, sw->matrix);
      if (in_language.count(lin.get())) language_bytes += bytes;
      lin->set_compressed(sw);
    }
  return language_bytes;
}

// Weight bytes a decoded token reads besides the language blocks' Linears: lm_head (dense) and
// one embedding row; norms are negligible and left out.
double other_bytes_per_token(model::Llava& net) {
  const auto& lm = net->language_model;
  return double(lm->lm_head->weight.numel()) * sizeof(float) + double(net->config.text.hidden_size) * sizeof(float);
}

double dense_block_bytes(model::Llava& net) {
  double b = 0;
  for (auto& [name, lin] : net->language_block_linears()) b += double(lin->weight.numel()) * sizeof(float);
  return b;
}

// Streaming read bandwidth in GB/s: `threads` threads each sum their share of a buffer four times
// the last-level cache (at least 1 GiB), best of five passes after a warm-up pass.
double read_bandwidth_gbps(int threads) {
  const size_t n = size_t(std::max(4 * last_level_cache_bytes(), 1073741824.0)) / sizeof(float);
  std::vector<float> buf(n, 1.0f);
  std::vector<double> sums(size_t(threads), 0.0);
  auto pass = [&] {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        const size_t lo = n * size_t(t) / size_t(threads), hi = n * size_t(t + 1) / size_t(threads);
        float acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (size_t i = lo; i + 8 <= hi; i += 8)
          for (int k = 0; k < 8; ++k) acc[k] += buf[i + size_t(k)];
        double s = 0;
        for (float a : acc) s += a;
        sums[size_t(t)] = s;
      });
    for (auto& th : pool) th.join();
  };
  pass();
  double best = 0;
  for (int r = 0; r < 5; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    pass();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, double(n) * sizeof(float) / s / 1e9);
  }
  return best;
}

struct DecodeRun {
  std::vector<int64_t> ids;
  double prefill_tps = 0, decode_tps = 0;
};

// One greedy generation after a short warm-up (pages and caches touched once).
DecodeRun time_generation(model::Llava& net, const std::vector<int64_t>& prompt, int64_t new_tokens) {
  eval::GenerateOptions warm;
  warm.max_new_tokens = 2;
  eval::generate_greedy(net, prompt, torch::Tensor(), warm, torch::kCPU);
  eval::GenerateOptions go;
  go.max_new_tokens = new_tokens;
  const auto r = eval::generate_greedy(net, prompt, torch::Tensor(), go, torch::kCPU);
  DecodeRun d;
  d.ids = r.output_ids;
  d.prefill_tps = double(prompt.size()) / r.prefill_seconds;
  // The first new token comes with the prefill; the others are one decode step each.
  d.decode_tps = double(r.output_ids.size() - 1) / (r.seconds - r.prefill_seconds);
  return d;
}

void run_bench_decode(const DecodeFlags& f) {
  RESSA_CHECK_ARG(f.o_model->count() + f.o_config->count() == 1, "[bench decode] give exactly one of --model DIR or --config config.json");
  RESSA_CHECK_ARG(f.o_s->count() + f.o_p->count() <= 1, "[bench decode] give at most one of --sparsity and --pattern");
  RESSA_CHECK_ARG(f.prompt_tokens > 0 && f.new_tokens > 1, "[bench decode] --prompt-tokens must be > 0 and --new-tokens > 1");
  const auto pattern = f.o_p->count() ? prune::SparsityPattern::parse(f.pattern)
                                      : prune::SparsityPattern::unstructured(f.sparsity);
  RESSA_CHECK_ARG(!f.o_p->count() || pattern.is_nm(), "[bench decode] --pattern expects N:M, got ", f.pattern);
  const auto values = sparse::parse_value_type(f.dtype);
  auto rt = setup(f.c);
  RESSA_CHECK_ARG(rt.device.is_cpu(), "[bench decode] the sparse kernels run on the CPU only");
  torch::NoGradGuard ng;
  auto net = build_model(f);
  net->eval();
  const auto& text = net->config.text;
  std::mt19937_64 rng(f.seed);
  std::vector<int64_t> prompt(size_t(f.prompt_tokens));
  for (auto& id : prompt) id = 3 + int64_t(rng() % uint64_t(std::max<int64_t>(1, text.vocab_size - 3)));
  if (!pattern.is_dense()) prune_by_magnitude(net, pattern);

  info("bench decode: dense, " + std::to_string(f.prompt_tokens) + " prompt + " + std::to_string(f.new_tokens) +
       " new tokens, " + std::to_string(rt.threads) + " threads");
  const auto dense = time_generation(net, prompt, f.new_tokens);
  const double dense_bytes = dense_block_bytes(net) + other_bytes_per_token(net);
  double sparse_bytes = dense_bytes;
  DecodeRun sparse = dense;
  const bool compressed = !pattern.is_dense();
  if (compressed) {
    sparse_bytes = attach_compressed(net, pattern, values) + other_bytes_per_token(net);
    info("bench decode: sparse (" + std::string(pattern.is_nm() ? "N:M" : "bitmask") + ", " +
         sparse::to_string(values) + " values, " + sparse::to_string(sparse::active_isa()) + ")");
    sparse = time_generation(net, prompt, f.new_tokens);
  }
  const double read_gbps = read_bandwidth_gbps(rt.threads);
  const bool same = dense.ids == sparse.ids;
  const double dense_gbps = dense_bytes * dense.decode_tps / 1e9, sparse_gbps = sparse_bytes * sparse.decode_tps / 1e9;

  const std::string stored = compressed ? std::string(" ") + sparse::to_string(values) : std::string();
  char line[768];
  std::snprintf(line, sizeof line,
                "decode %s%s: dense %.2f tok/s (%.2f GB/token, %.1f GB/s), sparse %.2f tok/s (%.2f GB/token, "
                "%.1f GB/s): %.2fx; prefill %.1f vs %.1f tok/s (%.2fx); read bandwidth %.1f GB/s; same tokens: %s",
                pattern.to_string().c_str(), stored.c_str(),
                dense.decode_tps, dense_bytes / 1e9, dense_gbps, sparse.decode_tps, sparse_bytes / 1e9, sparse_gbps,
                sparse.decode_tps / dense.decode_tps, dense.prefill_tps, sparse.prefill_tps,
                sparse.prefill_tps / dense.prefill_tps, read_gbps, same ? "yes" : "NO");
  std::cout << line << "\n";
  write_json(f.c.json_path,
             {{"pattern", pattern.to_string()},
              {"values", sparse::to_string(values)},
              {"prompt_tokens", f.prompt_tokens},
              {"new_tokens", f.new_tokens},
              {"threads", rt.threads},
              {"isa", sparse::to_string(sparse::active_isa())},
              {"dense_decode_tps", dense.decode_tps},
              {"sparse_decode_tps", sparse.decode_tps},
              {"decode_speedup", sparse.decode_tps / dense.decode_tps},
              {"dense_prefill_tps", dense.prefill_tps},
              {"sparse_prefill_tps", sparse.prefill_tps},
              {"prefill_speedup", sparse.prefill_tps / dense.prefill_tps},
              {"dense_bytes_per_token", dense_bytes},
              {"bytes_per_token", sparse_bytes},
              {"dense_achieved_gbps", dense_gbps},
              {"achieved_gbps", sparse_gbps},
              {"read_gbps", read_gbps},
              {"same_tokens", same},
              {"load_average", load_average()}});
  RESSA_CHECK(same || values != sparse::ValueType::f32,
              "[bench decode] the sparse model chose other tokens than the dense one with fp32 values");
}

}  // namespace

void register_bench_decode(CLI::App* bench) {
  auto f = std::make_shared<DecodeFlags>();
  auto* cmd = bench->add_subcommand("decode", "greedy decoding at batch 1: dense vs the sparse kernels, same run");
  f->o_model = cmd->add_option("--model", f->model, "model directory");
  f->o_config = cmd->add_option("--config", f->config, "config.json: random weights of that shape")
                    ->check(CLI::ExistingFile);
  f->o_s = cmd->add_option("--sparsity", f->sparsity, "prune every block Linear by magnitude to this ratio first");
  f->o_p = cmd->add_option("--pattern", f->pattern, "... or to this N:M pattern (N zeros in every M weights)");
  cmd->add_option("--dtype", f->dtype, "stored values of the compressed weights: float32, bfloat16 or float16")
      ->capture_default_str();
  cmd->add_option("--prompt-tokens", f->prompt_tokens, "random prompt length")->capture_default_str();
  cmd->add_option("--new-tokens", f->new_tokens, "tokens generated (the first comes with the prefill)")
      ->capture_default_str();
  cmd->add_option("--seed", f->seed, "random weights and prompt")->capture_default_str();
  add_compute_flags(cmd, f->c, true);
  cmd->callback([f] { run_bench_decode(*f); });
}

}  // namespace ressa::cli
