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

#include "common.h"
#include "ressa/prune/mask.h"
#include "ressa/prune/pattern.h"
#include "ressa/sparse/kernels.h"

namespace ressa::cli {
namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n == 0 ? 0.0 : n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// The q-quantile (0 <= q <= 1) of v, nearest rank.
double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  return v[size_t(std::lround(q * double(v.size() - 1)))];
}

// Milliseconds per call of fn, over `calls` calls made back to back.
template <typename F>
double time_ms(F&& fn, int64_t calls) {
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < calls; ++i) fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / double(calls);
}

// The 1-minute load average (other jobs on the machine distort timings).
double load_average() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return l;
}

// Bytes of the last-level cache (sysfs, then sysconf; 32 MiB when neither knows).
double last_level_cache_bytes() {
  double best = 0;
  for (int i = 0; i < 8; ++i) {
    std::ifstream f("/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/size");
    std::string s;
    if (!(f >> s) || s.empty()) continue;
    double v = std::atof(s.c_str());
    const char unit = s.back();
    v *= unit == 'K' ? 1024.0 : unit == 'M' ? 1048576.0 : unit == 'G' ? 1073741824.0 : 1.0;
    best = std::max(best, v);
  }
  if (best <= 0) best = double(std::max(0L, sysconf(_SC_LEVEL3_CACHE_SIZE)));
  return best > 0 ? best : 32.0 * 1048576.0;
}

// MemAvailable from /proc/meminfo (free memory plus what the page cache would give back); the
// free pages from sysconf where /proc is missing.
double available_memory_bytes() {
  std::ifstream f("/proc/meminfo");
  for (std::string line; std::getline(f, line);)
    if (line.rfind("MemAvailable:", 0) == 0) return std::atof(line.c_str() + 13) * 1024.0;  // "... kB"
  return double(sysconf(_SC_AVPHYS_PAGES)) * double(sysconf(_SC_PAGESIZE));
}

}  // namespace

void register_bench(CLI::App& app) {
  struct Flags {
    ComputeFlags c;
    int64_t rows = 0, cols = 0, batch = 1, repeats = 0, copies = 0, burst = 1;
    bool cold = false;
    double sparsity = 0, min_time = 1.0;
    std::string pattern, format = "auto", dtype = "f32";
    uint64_t seed = 0;
    CLI::Option *o_s = nullptr, *o_p = nullptr;
  };
  auto f = std::make_shared<Flags>();
  auto* bench = app.add_subcommand("bench", "micro-benchmarks of the sparse kernels");
  bench->require_subcommand(1);
  auto* cmd = bench->add_subcommand("gemv", "dense (libtorch + OpenBLAS) vs sparse kernel for y = x W^T, same run");
  cmd->add_option("--rows", f->rows, "rows of W (output features)")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--cols", f->cols, "columns of W (input features)")->required()->check(CLI::PositiveNumber);
  cmd->add_option("--batch", f->batch, "rows of x (1 = decode, larger = prefill)")->check(CLI::PositiveNumber);
  f->o_s = cmd->add_option("--sparsity", f->sparsity, "unstructured ratio in [0, 1) (per row, by magnitude)");
  f->o_p = cmd->add_option("--pattern", f->pattern, "N:M pattern (N zeros in every M weights), e.g. 2:4");
  f->o_s->excludes(f->o_p);
  cmd->add_option("--format", f->format, "auto (bitmask for --sparsity, nm for --pattern), bitmask or nm")
      ->check(CLI::IsMember({"auto", "bitmask", "nm"}));
  cmd->add_option("--dtype", f->dtype,
                  "sparse value storage: float32, bfloat16 or float16 (weights rounded to bfloat16 or IEEE half, "
                  "fp32 accumulation; the dense baseline stays fp32; f32, bf16, f16 also accepted)")
      ->check(CLI::IsMember({"float32", "bfloat16", "float16", "f32", "bf16", "f16"}));
  cmd->add_option("--repeats", f->repeats, "timed repeats of each (0 = as many as fit --min-time, at least 10)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--min-time", f->min_time, "seconds of timed repeats when --repeats is 0")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", f->seed, "random weights and inputs");
  cmd->add_flag("--cold", f->cold,
                "stream every weight from memory: rotate over copies of W spanning 2x the last-level cache "
                "(the regime of decoding a model larger than the cache)");
  cmd->add_option("--copies", f->copies, "copies of W to rotate over (more than 1 is cold; 0 = 1, or with --cold 2x the cache)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--burst", f->burst,
                  "calls per timed sample, back to back (each on the next copy with --cold), as a decode step "
                  "runs one layer's products after another; 1 = each call alone, its threads woken for it")
      ->check(CLI::PositiveNumber);
  add_compute_flags(cmd, f->c, true);
  cmd->callback([f] {
    const bool has_s = f->o_s->count() > 0, has_p = f->o_p->count() > 0;
    if (has_s == has_p)
      throw std::invalid_argument(std::string("[bench gemv] give exactly one of --sparsity F or --pattern N:M (got ") +
                                  (has_s ? "both" : "neither") + ")");
    prune::SparsityPattern pat;
    try {
      pat = has_s ? prune::SparsityPattern::unstructured(f->sparsity) : prune::SparsityPattern::parse(f->pattern);
    } catch (const std::invalid_argument& e) {
      throw std::invalid_argument(std::string("[bench gemv] ") + (has_s ? "--sparsity: " : "--pattern: ") + e.what());
    }
    if (has_p && !pat.is_nm())
      throw std::invalid_argument("[bench gemv] --pattern expects N:M (e.g. 2:4), got '" + f->pattern + "'");
    const bool use_nm = f->format == "nm" || (f->format == "auto" && pat.is_nm());
    if (use_nm && !pat.is_nm()) throw std::invalid_argument("[bench gemv] --format nm needs --pattern N:M");
    const auto values = sparse::parse_value_type(f->dtype);
    if (pat.is_nm() && f->cols % pat.m != 0)
      throw std::invalid_argument("[bench gemv] --cols " + std::to_string(f->cols) + " is not a multiple of M=" +
                                  std::to_string(pat.m));
    if (f->c.device != "cpu") throw std::invalid_argument("[bench gemv] --device: the sparse kernels are CPU-only");
    f->c.blas_as_threads = true;  // the dense baseline is OpenBLAS at --threads
    auto rt = setup(f->c);
    // Each side on its own threads, as in isolation: the sparse kernels on their own pool rather
    // than torch's intra-op pool (setup's choice for models), whose OpenMP workers spin for a
    // while after each call on the cores the next OpenBLAS call needs (measured: dense mm 3.1 ->
    // 6.1 ms at 2 threads, docs/benchmarks.md "Kernel threads"). The kernel work is the same.
    sparse::set_parallel_runner(nullptr);
    const int64_t R = f->rows, C = f->cols, B = f->batch;

    torch::NoGradGuard ng;
    torch::manual_seed(f->seed);
    auto w = torch::randn({R, C});
    w.mul_(prune::mask_for(w.abs(), pat, prune::Granularity::Row).to(torch::kFloat32));
    auto x = torch::randn({B, C});
    const double achieved = prune::sparsity(w);

    // The weight in the sparse format; with --cold, copies of both forms, enough that the dense
    // copies span twice the last-level cache, so each one is evicted before its next use.
    std::vector<torch::Tensor> ws{w}, wts{w.t()};
    std::vector<sparse::BitmaskMatrix> bms;
    std::vector<sparse::NMMatrix> nms;
    const auto add_sparse = [&](const torch::Tensor& wk) {
      if (use_nm) nms.push_back(sparse::NMMatrix::from_dense(wk.data_ptr<float>(), R, C, pat.n, pat.m, values));
      else bms.push_back(sparse::BitmaskMatrix::from_dense(wk.data_ptr<float>(), R, C, values));
    };
    add_sparse(w);
    const size_t wbytes = use_nm ? nms[0].bytes() : bms[0].bytes();
    const double dense_w_bytes = 4.0 * double(R) * double(C);
    const double llc = last_level_cache_bytes();
    const int64_t copies = f->copies > 0 ? f->copies
                           : f->cold      ? std::max<int64_t>(2, int64_t(std::ceil(2.0 * llc / dense_w_bytes)))
                                          : 1;
    const double working_set = double(copies) * (dense_w_bytes + double(wbytes));
    const double avail = available_memory_bytes();
    if (copies > 1 && avail > 0 && working_set > 0.6 * avail)
      throw std::invalid_argument("[bench gemv] " + std::to_string(copies) + " copies of the weight need " +
                                  std::to_string(int64_t(working_set / 1e6)) + " MB, more than 60% of the " +
                                  std::to_string(int64_t(avail / 1e6)) + " MB of available memory (give fewer --copies)");
    for (int64_t k = 1; k < copies; ++k) {
      ws.push_back(w.clone());
      wts.push_back(ws.back().t());
      add_sparse(ws.back());
    }
    auto y_sparse = torch::empty({B, R});
    auto y_mm = torch::empty({B, R});
    auto y_mv = torch::empty({R});
    auto x1 = x[0].contiguous();
    // The dense calls a Linear makes: mm (addmm without bias; sgemm) and, at batch 1 with a 1-D
    // input, mv (sgemv, 2.5-3x faster than a [1, cols] sgemm here). The faster one is the baseline.
    // Each call takes the next copy (one copy unless --cold). mm and mv read the same storage (wts
    // are views of ws), so mv starts half the rotation away: when it ran on the copy mm had just
    // streamed, part of that copy was still in the L3 (4096x4096, 2 threads: cold dense mv 1.40 ms,
    // against 1.67-1.72 ms when no call precedes it on its copy; docs/benchmarks.md "Cold runs").
    int64_t n_mm = 0, n_mv = copies / 2, n_sp = 0;
    auto run_mm = [&] { at::mm_out(y_mm, x, wts[size_t(n_mm++ % copies)]); };
    auto run_mv = [&] { at::mv_out(y_mv, ws[size_t(n_mv++ % copies)], x1); };
    auto run_sparse = [&] {
      const size_t k = size_t(n_sp++ % copies);
      if (use_nm) sparse::nm_matmul(nms[k], x.data_ptr<float>(), B, y_sparse.data_ptr<float>(), rt.threads);
      else sparse::bitmask_matmul(bms[k], x.data_ptr<float>(), B, y_sparse.data_ptr<float>(), rt.threads);
    };
    for (int64_t i = 0; i < std::max<int64_t>(3, copies); ++i) {  // warm-up: pools, page faults, caches
      run_mm();
      if (B == 1) run_mv();
      run_sparse();
    }
    const double scale = std::max(1e-30, y_mm.abs().max().item<double>());
    const double max_rel_diff = (y_sparse - y_mm).abs().max().item<double>() / scale;

    std::vector<double> t_mm, t_mv, t_sp;
    const auto start = std::chrono::steady_clock::now();
    for (int64_t i = 0;; ++i) {
      if (f->repeats > 0 ? i >= f->repeats
                         : (i >= 10 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >=
                                           f->min_time) ||
                               i >= 10000)
        break;
      // Rotate the order so no kernel always runs right after another one's cache traffic.
      for (int k = 0; k < 3; ++k) {
        switch ((i + k) % 3) {
          case 0: t_mm.push_back(time_ms(run_mm, f->burst)); break;
          case 1: if (B == 1) t_mv.push_back(time_ms(run_mv, f->burst)); break;
          case 2: t_sp.push_back(time_ms(run_sparse, f->burst)); break;
        }
      }
    }
    const double mm_ms = median(t_mm), mv_ms = B == 1 ? median(t_mv) : 0.0, sparse_ms = median(t_sp);
    const bool mv_wins = B == 1 && mv_ms < mm_ms;
    const double dense_ms = mv_wins ? mv_ms : mm_ms;
    const double io_bytes = 4.0 * (B * C + B * R);
    const double dense_bytes = dense_w_bytes + io_bytes, sparse_bytes = double(wbytes) + io_bytes;
    const double speedup = dense_ms / sparse_ms, bound = dense_bytes / sparse_bytes;
    // How much the ratio moves from round to round (each round times the dense call and the
    // sparse one next to each other): on a shared host the medians alone hide it.
    const std::vector<double>& t_dense = mv_wins ? t_mv : t_mm;
    std::vector<double> round_speedup(std::min(t_dense.size(), t_sp.size()));
    for (size_t i = 0; i < round_speedup.size(); ++i) round_speedup[i] = t_dense[i] / t_sp[i];
    const double speedup_p10 = quantile(round_speedup, 0.1), speedup_p90 = quantile(round_speedup, 0.9);
    const double load = load_average();
    const std::string fmt = std::string(use_nm ? "nm" : "bitmask") + (values == sparse::ValueType::f32 ? "" : std::string("-") + sparse::to_string(values));
    const std::string cold_note =
        copies > 1 ? ", cold: " + std::to_string(copies) + " copies of W, " + std::to_string(int64_t(working_set / 1e6)) +
                         " MB (last-level cache " + std::to_string(int64_t(llc / 1048576.0)) + " MiB)"
                   : "";
    const char* timeout_env = std::getenv("OPENBLAS_THREAD_TIMEOUT");  // set by the CLI (core/runtime.h)
    const std::string blas_timeout = timeout_env ? timeout_env : "";
    const std::string burst_note = f->burst > 1 ? " of " + std::to_string(f->burst) + " calls back to back" : "";
    char line[768];
    std::snprintf(line, sizeof line,
                  "gemv %lldx%lld batch %lld %s (%s, sparsity %.4f), %d threads, %s, %zu repeats%s, load %.2f, "
                  "OPENBLAS_THREAD_TIMEOUT=%s%s\n"
                  "  dense  %-6s %9.3f ms  %6.1f GB/s  %7.1f MB%s\n"
                  "  sparse %-6s %9.3f ms  %6.1f GB/s  %7.1f MB\n"
                  "  speedup %.2fx (rounds p10-p90 %.2f-%.2fx; bytes-moved bound %.2fx); max |diff| / max |y| = %.2g",
                  (long long)R, (long long)C, (long long)B, pat.to_string().c_str(), fmt.c_str(), achieved, rt.threads,
                  sparse::to_string(sparse::active_isa()), t_sp.size(), burst_note.c_str(), load,
                  blas_timeout.empty() ? "unset" : blas_timeout.c_str(),
                  cold_note.c_str(), mv_wins ? "mv" : "mm", dense_ms,
                  dense_bytes / dense_ms / 1e6, dense_bytes / 1e6,
                  B == 1 ? (mv_wins ? (" (mm " + std::to_string(mm_ms) + " ms)").c_str()
                                    : (" (mv " + std::to_string(mv_ms) + " ms)").c_str())
                         : "",
                  fmt.c_str(), sparse_ms, sparse_bytes / sparse_ms / 1e6, sparse_bytes / 1e6, speedup, speedup_p10, speedup_p90, bound, max_rel_diff);
    std::cout << line << "\n";
    nlohmann::json j = {{"rows", R},
                        {"cols", C},
                        {"batch", B},
                        {"pattern", pat.to_string()},
                        {"format", use_nm ? "nm" : "bitmask"},
                        {"dtype", sparse::to_string(sparse::parse_value_type(f->dtype))},
                        {"sparsity", achieved},
                        {"threads", rt.threads},
                        {"isa", sparse::to_string(sparse::active_isa())},
                        {"repeats", t_sp.size()},
                        {"burst", f->burst},
                        {"dense_ms", dense_ms},
                        {"dense_call", mv_wins ? "mv" : "mm"},
                        {"dense_mm_ms", mm_ms},
                        {"sparse_ms", sparse_ms},
                        {"speedup", speedup},
                        {"speedup_p10", speedup_p10},
                        {"speedup_p90", speedup_p90},
                        {"dense_ms_p10", quantile(t_dense, 0.1)},
                        {"dense_ms_p90", quantile(t_dense, 0.9)},
                        {"sparse_ms_p10", quantile(t_sp, 0.1)},
                        {"sparse_ms_p90", quantile(t_sp, 0.9)},
                        {"sparse_threads", "own pool"},
                        {"dense_bytes", dense_bytes},
                        {"sparse_bytes", sparse_bytes},
                        {"bytes_bound", bound},
                        {"dense_gbs", dense_bytes / dense_ms / 1e6},
                        {"sparse_gbs", sparse_bytes / sparse_ms / 1e6},
                        {"max_rel_diff", max_rel_diff},
                        {"load_average", load},
                        {"cold", copies > 1},
                        {"copies", copies},
                        {"working_set_bytes", working_set},
                        {"last_level_cache_bytes", llc},
                        {"openblas_thread_timeout", blas_timeout}};
    if (B == 1) j["dense_mv_ms"] = mv_ms;
    write_json(f->c.json_path, j);
  });
}

}  // namespace ressa::cli
