// `ressa bench gemv`: y = x W^T with a random pruned weight W [rows, cols] and x [batch, cols],
// dense (libtorch -> OpenBLAS, the path a dense model takes) against ressa's sparse kernels at the
// same thread count in the same run. Timings are medians of interleaved repeats (dense and
// sparse alternate, so a burst of load from other jobs hits both); docs/benchmarks.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

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

// Milliseconds one call of fn takes.
template <typename F>
double time_ms(F&& fn) {
  const auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

// The 1-minute load average (other jobs on the machine distort timings).
double load_average() {
  std::ifstream f("/proc/loadavg");
  double l = -1;
  f >> l;
  return l;
}

}  // namespace

void register_bench(CLI::App& app) {
  struct Flags {
    ComputeFlags c;
    int64_t rows = 0, cols = 0, batch = 1, repeats = 0;
    double sparsity = 0, min_time = 1.0;
    std::string pattern, format = "auto";
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
  cmd->add_option("--repeats", f->repeats, "timed repeats of each (0 = as many as fit --min-time, at least 10)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--min-time", f->min_time, "seconds of timed repeats when --repeats is 0")->check(CLI::NonNegativeNumber);
  cmd->add_option("--seed", f->seed, "random weights and inputs");
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
    if (pat.is_nm() && f->cols % pat.m != 0)
      throw std::invalid_argument("[bench gemv] --cols " + std::to_string(f->cols) + " is not a multiple of M=" +
                                  std::to_string(pat.m));
    if (f->c.device != "cpu") throw std::invalid_argument("[bench gemv] --device: the sparse kernels are CPU-only");
    f->c.blas_as_threads = true;  // the dense baseline is OpenBLAS at --threads
    auto rt = setup(f->c);
    const int64_t R = f->rows, C = f->cols, B = f->batch;

    torch::NoGradGuard ng;
    torch::manual_seed(f->seed);
    auto w = torch::randn({R, C});
    w.mul_(prune::mask_for(w.abs(), pat, prune::Granularity::Row).to(torch::kFloat32));
    auto x = torch::randn({B, C});
    const double achieved = prune::sparsity(w);

    sparse::BitmaskMatrix bm;
    sparse::NMMatrix nmm;
    size_t wbytes;
    if (use_nm) {
      nmm = sparse::NMMatrix::from_dense(w.data_ptr<float>(), R, C, pat.n, pat.m);
      wbytes = nmm.bytes();
    } else {
      bm = sparse::BitmaskMatrix::from_dense(w.data_ptr<float>(), R, C);
      wbytes = bm.bytes();
    }
    auto y_sparse = torch::empty({B, R});
    auto y_mm = torch::empty({B, R});
    auto y_mv = torch::empty({R});
    auto x1 = x[0].contiguous();
    auto wt = w.t();
    // The dense calls a Linear makes: mm (addmm without bias; sgemm) and, at batch 1 with a 1-D
    // input, mv (sgemv, 2.5-3x faster than a [1, cols] sgemm here). The faster one is the baseline.
    auto run_mm = [&] { at::mm_out(y_mm, x, wt); };
    auto run_mv = [&] { at::mv_out(y_mv, w, x1); };
    auto run_sparse = [&] {
      if (use_nm) sparse::nm_matmul(nmm, x.data_ptr<float>(), B, y_sparse.data_ptr<float>(), rt.threads);
      else sparse::bitmask_matmul(bm, x.data_ptr<float>(), B, y_sparse.data_ptr<float>(), rt.threads);
    };
    for (int i = 0; i < 3; ++i) {  // warm-up: pools, page faults, caches
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
          case 0: t_mm.push_back(time_ms(run_mm)); break;
          case 1: if (B == 1) t_mv.push_back(time_ms(run_mv)); break;
          case 2: t_sp.push_back(time_ms(run_sparse)); break;
        }
      }
    }
    const double mm_ms = median(t_mm), mv_ms = B == 1 ? median(t_mv) : 0.0, sparse_ms = median(t_sp);
    const bool mv_wins = B == 1 && mv_ms < mm_ms;
    const double dense_ms = mv_wins ? mv_ms : mm_ms;
    const double io_bytes = 4.0 * (B * C + B * R);
    const double dense_bytes = 4.0 * R * C + io_bytes, sparse_bytes = double(wbytes) + io_bytes;
    const double speedup = dense_ms / sparse_ms, bound = dense_bytes / sparse_bytes;
    const double load = load_average();
    const std::string fmt = use_nm ? "nm" : "bitmask";
    char line[640];
    std::snprintf(line, sizeof line,
                  "gemv %lldx%lld batch %lld %s (%s, sparsity %.4f), %d threads, %s, %zu repeats, load %.2f\n"
                  "  dense  %-6s %9.3f ms  %6.1f GB/s  %7.1f MB%s\n"
                  "  sparse %-6s %9.3f ms  %6.1f GB/s  %7.1f MB\n"
                  "  speedup %.2fx (bytes-moved bound %.2fx); max |diff| / max |y| = %.2g",
                  (long long)R, (long long)C, (long long)B, pat.to_string().c_str(), fmt.c_str(), achieved, rt.threads,
                  sparse::to_string(sparse::active_isa()), t_sp.size(), load, mv_wins ? "mv" : "mm", dense_ms,
                  dense_bytes / dense_ms / 1e6, dense_bytes / 1e6,
                  B == 1 ? (mv_wins ? (" (mm " + std::to_string(mm_ms) + " ms)").c_str()
                                    : (" (mv " + std::to_string(mv_ms) + " ms)").c_str())
                         : "",
                  fmt.c_str(), sparse_ms, sparse_bytes / sparse_ms / 1e6, sparse_bytes / 1e6, speedup, bound, max_rel_diff);
    std::cout << line << "\n";
    nlohmann::json j = {{"rows", R},
                        {"cols", C},
                        {"batch", B},
                        {"pattern", pat.to_string()},
                        {"format", fmt},
                        {"sparsity", achieved},
                        {"threads", rt.threads},
                        {"isa", sparse::to_string(sparse::active_isa())},
                        {"repeats", t_sp.size()},
                        {"dense_ms", dense_ms},
                        {"dense_call", mv_wins ? "mv" : "mm"},
                        {"dense_mm_ms", mm_ms},
                        {"sparse_ms", sparse_ms},
                        {"speedup", speedup},
                        {"dense_bytes", dense_bytes},
                        {"sparse_bytes", sparse_bytes},
                        {"bytes_bound", bound},
                        {"dense_gbs", dense_bytes / dense_ms / 1e6},
                        {"sparse_gbs", sparse_bytes / sparse_ms / 1e6},
                        {"max_rel_diff", max_rel_diff},
                        {"load_average", load}};
    if (B == 1) j["dense_mv_ms"] = mv_ms;
    write_json(f->c.json_path, j);
  });
}

}  // namespace ressa::cli
