// `ressa bench gemv`: y = x W^T with a random pruned weight W [rows, cols] and x [batch, cols],
// dense (libtorch -> OpenBLAS, the path a dense model takes) against ressa's sparse kernels at the
// same thread count in the same run. Timings are medians of interleaved repeats (dense and
// sparse alternate, so a burst of load from other jobs hits both); docs/benchmarks.md. With --cold
// each call takes the next of N copies of the weight, N chosen so that the copies span twice the
// last-level cache: every call streams its weight from memory, as decoding a model much larger
// than the cache does (one weight repeated stays in a large L3, which favours the dense side).
// With --burst K each timed sample is K calls of one kind back to back, as a decode step runs one
// layer's products after another: a pool's threads are then awake from call to call, while with
// K = 1 every call wakes the threads that slept through the other side's call.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <unistd.h>

#include "bench_util.h"
#include "common.h"
#include "ressa/prune/mask.h"
#include "ressa/prune/pattern.h"
#include "ressa/sparse/kernels.h"

namespace ressa::cli {
namespace {

// ---- ressa bench gemv ------------------------------------------------------------------------

// The flags of `ressa bench gemv`, one field each (o_s, o_p: --sparsity and --pattern, to see
// which was given).
struct GemvFlags {
  ComputeFlags c;
  int64_t rows = 0, cols = 0, batch = 1, repeats = 0, copies = 0, burst = 1;
  bool cold = false;
  double sparsity = 0, min_time = 1.0;
  std::string pattern, format = "auto", dtype = "f32";
  uint64_t seed = 0;
  CLI::Option *o_s = nullptr, *o_p = nullptr;
};

// What the flags ask for, checked: the pattern W is pruned to and the sparse format it is kept in.
struct GemvPlan {
  prune::SparsityPattern pat;
  bool use_nm = false;
  sparse::ValueType values = sparse::ValueType::f32;
};

// x [batch, cols] and `copies` copies of the pruned W [rows, cols]: dense (ws), as W^T views of
// ws (wts, what mm reads) and in the sparse format (bms or nms).
struct GemvOperands {
  torch::Tensor x;
  std::vector<torch::Tensor> ws, wts;
  std::vector<sparse::BitmaskMatrix> bms;
  std::vector<sparse::NMMatrix> nms;
  double achieved = 0;       // measured sparsity of W
  size_t wbytes = 0;         // bytes of one sparse copy
  double dense_w_bytes = 0;  // bytes of one dense copy
  double llc = 0;            // bytes of the last-level cache
  int64_t copies = 1;
  double working_set = 0;  // bytes of all copies, dense and sparse
};

// Milliseconds per timed sample of each call (mv only at batch 1), and how far the sparse result
// is from mm's.
struct GemvSamples {
  std::vector<double> t_mm, t_mv, t_sp;
  double max_rel_diff = 0;
};

// The figures a run reports, from its samples.
struct GemvSummary {
  double mm_ms = 0, mv_ms = 0, sparse_ms = 0, dense_ms = 0;
  bool mv_wins = false;
  double dense_bytes = 0, sparse_bytes = 0, speedup = 0, bound = 0;
  double speedup_p10 = 0, speedup_p90 = 0, dense_ms_p10 = 0, dense_ms_p90 = 0, sparse_ms_p10 = 0, sparse_ms_p90 = 0;
  double load = 0;
  std::string blas_timeout;
};

void add_gemv_flags(CLI::App* cmd, GemvFlags& f) {
  cmd->add_option("--rows", f.rows, "rows of W (output features)")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--cols", f.cols, "columns of W (input features)")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", f.batch, "rows of x (1 = decode, larger = prefill)")->check(CLI::PositiveNumber);
  f.o_s = cmd->add_option("--sparsity", f.sparsity, "unstructured ratio in [0, 1) (per row, by magnitude)");
  f.o_p = cmd->add_option("--pattern", f.pattern, "N:M pattern (N zeros in every M weights), e.g. 2:4");
  f.o_s->excludes(f.o_p);
  cmd->add_option("--format", f.format, "auto (bitmask for --sparsity, nm for --pattern), bitmask or nm")
      ->check(CLI::IsMember({"auto", "bitmask", "nm"}));
  cmd->add_option("--dtype", f.dtype,
                  "sparse value storage: float32, bfloat16 or float16 (weights rounded to bfloat16 or IEEE half, "
                  "fp32 accumulation; the dense baseline stays fp32; f32, bf16, f16 also accepted)")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16", "f32", "bf16", "f16"}));
  cmd->add_option("--repeats", f.repeats, "timed repeats of each (0 = as many as fit --min-time, at least 10)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--min-time", f.min_time, "seconds of timed repeats when --repeats is 0")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", f.seed, "random weights and inputs");
  cmd->add_flag("--cold", f.cold,
                "stream every weight from memory: rotate over copies of W spanning 2x the last-level cache "
                "(the regime of decoding a model larger than the cache)");
  cmd->add_option("--copies", f.copies, "copies of W to rotate over (more than 1 is cold; 0 = 1, or with --cold 2x the cache)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--burst", f.burst,
                  "calls per timed sample, back to back (each on the next copy with --cold), as a decode step "
                  "runs one layer's products after another; 1 = each call alone, its threads woken for it")
      ->check(CLI::PositiveNumber);
  add_compute_flags(cmd, f.c, true);
}

// The checks CLI11 cannot make: one of --sparsity and --pattern, a format that fits the pattern,
// --cols a multiple of M, the CPU.
GemvPlan check_gemv_flags(const GemvFlags& f) {
  const bool has_s = f.o_s->count() > 0, has_p = f.o_p->count() > 0;
  if (has_s == has_p)
    throw std::invalid_argument(std::string("[bench gemv] give exactly one of --sparsity F or --pattern N:M (got ") +
                                (has_s ? "both" : "neither") + ")");
  GemvPlan p;
  try {
    p.pat = has_s ? prune::SparsityPattern::unstructured(f.sparsity) : prune::SparsityPattern::parse(f.pattern);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(std::string("[bench gemv] ") + (has_s ? "--sparsity: " : "--pattern: ") + e.what());
  }
  if (has_p && !p.pat.is_nm())
    throw std::invalid_argument("[bench gemv] --pattern expects N:M (e.g. 2:4), got '" + f.pattern + "'");
  p.use_nm = f.format == "nm" || (f.format == "auto" && p.pat.is_nm());
  if (p.use_nm && !p.pat.is_nm()) throw std::invalid_argument("[bench gemv] --format nm needs --pattern N:M");
  p.values = sparse::parse_value_type(f.dtype);
  if (p.pat.is_nm() && f.cols % p.pat.m != 0)
    throw std::invalid_argument("[bench gemv] --cols " + std::to_string(f.cols) + " is not a multiple of M=" +
                                std::to_string(p.pat.m));
  if (f.c.device != "cpu") throw std::invalid_argument("[bench gemv] --device: the sparse kernels are CPU-only");
  return p;
}

// A random W pruned to the plan's pattern, a random x, and the copies of W the run rotates over.
GemvOperands make_gemv_operands(const GemvFlags& f, const GemvPlan& p) {
  const int64_t R = f.rows, C = f.cols, B = f.batch;
  GemvOperands o;
  torch::manual_seed(f.seed);
  auto w = torch::randn({R, C});
  w.mul_(prune::mask_for(w.abs(), p.pat, prune::Granularity::Row).to(torch::kFloat32));
  o.x = torch::randn({B, C});
  o.achieved = prune::sparsity(w);

  // The weight in the sparse format; with --cold, copies of both forms, enough that the dense
  // copies span twice the last-level cache, so each one is evicted before its next use.
  o.ws = {w};
  o.wts = {w.t()};
  const auto add_sparse = [&](const torch::Tensor& wk) {
    if (p.use_nm) o.nms.push_back(sparse::NMMatrix::from_dense(wk.data_ptr<float>(), R, C, p.pat.n, p.pat.m, p.values));
    else o.bms.push_back(sparse::BitmaskMatrix::from_dense(wk.data_ptr<float>(), R, C, p.values));
  };
  add_sparse(w);
  o.wbytes = p.use_nm ? o.nms[0].bytes() : o.bms[0].bytes();
  o.dense_w_bytes = 4.0 * double(R) * double(C);
  o.llc = last_level_cache_bytes();
  o.copies = f.copies > 0 ? f.copies
             : f.cold      ? std::max<int64_t>(2, int64_t(std::ceil(2.0 * o.llc / o.dense_w_bytes)))
                           : 1;
  o.working_set = double(o.copies) * (o.dense_w_bytes + double(o.wbytes));
  const double avail = available_memory_bytes();
  if (o.copies > 1 && avail > 0 && o.working_set > 0.6 * avail)
    throw std::invalid_argument("[bench gemv] " + std::to_string(o.copies) + " copies of the weight need " +
                                std::to_string(int64_t(o.working_set / 1e6)) + " MB, more than 60% of the " +
                                std::to_string(int64_t(avail / 1e6)) + " MB of available memory (give fewer --copies)");
  for (int64_t k = 1; k < o.copies; ++k) {
    o.ws.push_back(w.clone());
    o.wts.push_back(o.ws.back().t());
    add_sparse(o.ws.back());
  }
  return o;
}

// Timed samples of the three calls, interleaved: --repeats rounds, or as many as fit --min-time
// (at least 10, at most 10000); mv only when with_mv.
template <typename Mm, typename Mv, typename Sp>
void sample_rounds(const GemvFlags& f, bool with_mv, Mm& run_mm, Mv& run_mv, Sp& run_sparse, GemvSamples& s) {
  const auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0;; ++i) {
    if (f.repeats > 0 ? i >= f.repeats
                      : (i >= 10 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >=
                                        f.min_time) ||
                            i >= 10000)
      break;
    // Rotate the order so no kernel always runs right after another one's cache traffic.
    for (int k = 0; k < 3; ++k) {
      switch ((i + k) % 3) {
        case 0: s.t_mm.push_back(time_ms(run_mm, f.burst)); break;
        case 1: if (with_mv) s.t_mv.push_back(time_ms(run_mv, f.burst)); break;
        case 2: s.t_sp.push_back(time_ms(run_sparse, f.burst)); break;
      }
    }
  }
}

// Warms up, compares the sparse result with mm's, then times the dense and sparse calls.
GemvSamples time_gemv(const GemvFlags& f, const GemvPlan& p, const GemvOperands& o, int threads) {
  const int64_t R = f.rows, B = f.batch, copies = o.copies;
  auto y_sparse = torch::empty({B, R});
  auto y_mm = torch::empty({B, R});
  auto y_mv = torch::empty({R});
  auto x1 = o.x[0].contiguous();
  // The dense calls a Linear makes: mm (addmm without bias; sgemm) and, at batch 1 with a 1-D
  // input, mv (sgemv, 2.5-3x faster than a [1, cols] sgemm here). The faster one is the baseline.
  // Each call takes the next copy (one copy unless --cold). mm and mv read the same storage (wts
  // are views of ws), so mv starts half the rotation away: when it ran on the copy mm had just
  // streamed, part of that copy was still in the L3 (4096x4096, 2 threads: cold dense mv 1.40 ms,
  // against 1.67-1.72 ms when no call precedes it on its copy; docs/benchmarks.md "Cold runs").
  int64_t n_mm = 0, n_mv = copies / 2, n_sp = 0;
  auto run_mm = [&] { at::mm_out(y_mm, o.x, o.wts[size_t(n_mm++ % copies)]); };
  auto run_mv = [&] { at::mv_out(y_mv, o.ws[size_t(n_mv++ % copies)], x1); };
  auto run_sparse = [&] {
    const size_t k = size_t(n_sp++ % copies);
    if (p.use_nm) sparse::nm_matmul(o.nms[k], o.x.data_ptr<float>(), B, y_sparse.data_ptr<float>(), threads);
    else sparse::bitmask_matmul(o.bms[k], o.x.data_ptr<float>(), B, y_sparse.data_ptr<float>(), threads);
  };
  for (int64_t i = 0; i < std::max<int64_t>(3, copies); ++i) {  // warm-up: pools, page faults, caches
    run_mm();
    if (B == 1) run_mv();
    run_sparse();
  }
  GemvSamples s;
  const double scale = std::max(1e-30, y_mm.abs().max().item<double>());
  s.max_rel_diff = (y_sparse - y_mm).abs().max().item<double>() / scale;
  sample_rounds(f, B == 1, run_mm, run_mv, run_sparse, s);
  return s;
}

// The medians, their ratio and spread, and the bytes each side moves per call.
GemvSummary summarize_gemv(const GemvFlags& f, const GemvOperands& o, const GemvSamples& s) {
  const int64_t R = f.rows, C = f.cols, B = f.batch;
  GemvSummary r;
  r.mm_ms = median(s.t_mm);
  r.mv_ms = B == 1 ? median(s.t_mv) : 0.0;
  r.sparse_ms = median(s.t_sp);
  r.mv_wins = B == 1 && r.mv_ms < r.mm_ms;
  r.dense_ms = r.mv_wins ? r.mv_ms : r.mm_ms;
  const double io_bytes = 4.0 * (B * C + B * R);
  r.dense_bytes = o.dense_w_bytes + io_bytes;
  r.sparse_bytes = double(o.wbytes) + io_bytes;
  r.speedup = r.dense_ms / r.sparse_ms;
  r.bound = r.dense_bytes / r.sparse_bytes;
  // How much the ratio moves from round to round (each round times the dense call and the
  // sparse one next to each other): on a shared host the medians alone hide it.
  const std::vector<double>& t_dense = r.mv_wins ? s.t_mv : s.t_mm;
  std::vector<double> round_speedup(std::min(t_dense.size(), s.t_sp.size()));
  for (size_t i = 0; i < round_speedup.size(); ++i) round_speedup[i] = t_dense[i] / s.t_sp[i];
  r.speedup_p10 = quantile(round_speedup, 0.1);
  r.speedup_p90 = quantile(round_speedup, 0.9);
  r.dense_ms_p10 = quantile(t_dense, 0.1);
  r.dense_ms_p90 = quantile(t_dense, 0.9);
  r.sparse_ms_p10 = quantile(s.t_sp, 0.1);
  r.sparse_ms_p90 = quantile(s.t_sp, 0.9);
  r.load = load_average();
  const char* timeout_env = std::getenv("OPENBLAS_THREAD_TIMEOUT");  // set by the CLI (core/runtime.h)
  r.blas_timeout = timeout_env ? timeout_env : "";
  return r;
}

// The three lines `ressa bench gemv` prints.
void print_gemv(const GemvFlags& f, const GemvPlan& p, const GemvOperands& o, const GemvSamples& s,
                const GemvSummary& r, int threads) {
  const int64_t R = f.rows, C = f.cols, B = f.batch;
  const std::string fmt = std::string(p.use_nm ? "nm" : "bitmask") + (p.values == sparse::ValueType::f32 ? "" : std::string("-") + sparse::to_string(p.values));
  const std::string cold_note =
      o.copies > 1 ? ", cold: " + std::to_string(o.copies) + " copies of W, " + std::to_string(int64_t(o.working_set / 1e6)) +
                         " MB (last-level cache " + std::to_string(int64_t(o.llc / 1048576.0)) + " MiB)"
                   : "";
  const std::string burst_note = f.burst > 1 ? " of " + std::to_string(f.burst) + " calls back to back" : "";
  char line[768];
  std::snprintf(line, sizeof line,
                "gemv %lldx%lld batch %lld %s (%s, sparsity %.4f), %d threads, %s, %zu repeats%s, load %.2f, "
                "OPENBLAS_THREAD_TIMEOUT=%s%s\n"
                "  dense  %-6s %9.3f ms  %6.1f GB/s  %7.1f MB%s\n"
                "  sparse %-6s %9.3f ms  %6.1f GB/s  %7.1f MB\n"
                "  speedup %.2fx (rounds p10-p90 %.2f-%.2fx; bytes-moved bound %.2fx); max |diff| / max |y| = %.2g",
                (long long)R, (long long)C, (long long)B, p.pat.to_string().c_str(), fmt.c_str(), o.achieved, threads,
                sparse::to_string(sparse::active_isa()), s.t_sp.size(), burst_note.c_str(), r.load,
                r.blas_timeout.empty() ? "unset" : r.blas_timeout.c_str(),
                cold_note.c_str(), r.mv_wins ? "mv" : "mm", r.dense_ms,
                r.dense_bytes / r.dense_ms / 1e6, r.dense_bytes / 1e6,
                B == 1 ? (r.mv_wins ? (" (mm " + std::to_string(r.mm_ms) + " ms)").c_str()
                                    : (" (mv " + std::to_string(r.mv_ms) + " ms)").c_str())
                       : "",
                fmt.c_str(), r.sparse_ms, r.sparse_bytes / r.sparse_ms / 1e6, r.sparse_bytes / 1e6, r.speedup,
                r.speedup_p10, r.speedup_p90, r.bound, s.max_rel_diff);
  std::cout << line << "\n";
}

// The --json record of a run.
nlohmann::json gemv_json(const GemvFlags& f, const GemvPlan& p, const GemvOperands& o, const GemvSamples& s,
                         const GemvSummary& r, int threads) {
  nlohmann::json j = {{"rows", f.rows},
                      {"cols", f.cols},
                      {"batch", f.batch},
                      {"pattern", p.pat.to_string()},
                      {"format", p.use_nm ? "nm" : "bitmask"},
                      {"dtype", sparse::to_string(sparse::parse_value_type(f.dtype))},
                      {"sparsity", o.achieved},
                      {"threads", threads},
                      {"isa", sparse::to_string(sparse::active_isa())},
                      {"repeats", s.t_sp.size()},
                      {"burst", f.burst},
                      {"dense_ms", r.dense_ms},
                      {"dense_call", r.mv_wins ? "mv" : "mm"},
                      {"dense_mm_ms", r.mm_ms},
                      {"sparse_ms", r.sparse_ms},
                      {"speedup", r.speedup},
                      {"speedup_p10", r.speedup_p10},
                      {"speedup_p90", r.speedup_p90},
                      {"dense_ms_p10", r.dense_ms_p10},
                      {"dense_ms_p90", r.dense_ms_p90},
                      {"sparse_ms_p10", r.sparse_ms_p10},
                      {"sparse_ms_p90", r.sparse_ms_p90},
                      {"sparse_threads", "own pool"},
                      {"dense_bytes", r.dense_bytes},
                      {"sparse_bytes", r.sparse_bytes},
                      {"bytes_bound", r.bound},
                      {"dense_gbs", r.dense_bytes / r.dense_ms / 1e6},
                      {"sparse_gbs", r.sparse_bytes / r.sparse_ms / 1e6},
                      {"max_rel_diff", s.max_rel_diff},
                      {"load_average", r.load},
                      {"cold", o.copies > 1},
                      {"copies", o.copies},
                      {"working_set_bytes", o.working_set},
                      {"last_level_cache_bytes", o.llc},
                      {"openblas_thread_timeout", r.blas_timeout}};
  if (f.batch == 1) j["dense_mv_ms"] = r.mv_ms;
  return j;
}

// Checks the flags, sets up the threads, builds the operands, times the calls, reports.
void run_bench_gemv(GemvFlags& f) {
  const GemvPlan plan = check_gemv_flags(f);
  f.c.blas_as_threads = true;  // the dense baseline is OpenBLAS at --threads
  auto rt = setup(f.c);
  // Each side on its own threads, as in isolation: the sparse kernels on their own pool rather
  // than torch's intra-op pool (setup's choice for models), whose OpenMP workers spin for a
  // while after each call on the cores the next OpenBLAS call needs (measured: dense mm 3.1 ->
  // 6.1 ms at 2 threads, docs/benchmarks.md "Kernel threads"). The kernel work is the same.
  sparse::set_parallel_runner(nullptr);
  torch::NoGradGuard ng;
  const GemvOperands operands = make_gemv_operands(f, plan);
  const GemvSamples samples = time_gemv(f, plan, operands, rt.threads);
  const GemvSummary summary = summarize_gemv(f, operands, samples);
  print_gemv(f, plan, operands, samples, summary, rt.threads);
  write_json(f.c.json_path, gemv_json(f, plan, operands, samples, summary, rt.threads));
}

void register_bench_gemv(CLI::App* bench) {
  auto f = std::make_shared<GemvFlags>();
  auto* cmd = bench->add_subcommand("gemv", "dense (libtorch + OpenBLAS) vs sparse kernel for y = x W^T, same run");
  add_gemv_flags(cmd, *f);
  cmd->callback([f] { run_bench_gemv(*f); });
}

}  // namespace

void register_bench(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "micro-benchmarks of the sparse kernels");
  bench->require_subcommand(1);
  register_bench_gemv(bench);
  register_bench_decode(bench);
}

}  // namespace ressa::cli
