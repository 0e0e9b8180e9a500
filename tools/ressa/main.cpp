// ressa: prune, repair and deploy sparse vision-language models. Entry point: registers the
// subcommands and maps errors to exit codes (0 ok, 1 runtime failure, 2 usage error), each
// reported as one "error: ..." line on stderr.
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <chrono>
#include <iostream>
#include <memory>

#include "common.h"
#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/core/runtime.h"
#include "ressa/core/version.h"
#include "ressa/prune/pattern.h"

namespace ressa::cli {

void add_compute_flags(CLI::App* cmd, ComputeFlags& f, bool with_json) {
  cmd->add_option("--threads", f.threads, "compute threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", f.device, "cpu or cuda[:N] (cuda needs a CUDA build of libtorch)");
  if (with_json) cmd->add_option("--json", f.json_path, "write the results as one JSON object to this path");
}

void add_dist_flags(CLI::App* cmd, ComputeFlags& f) {
  f.data_parallel = true;
  const char* g = "Data parallel (default: from the environment, as torchrun or `ressa launch` set it)";
  cmd->add_option("--world-size", f.world_size, "processes in the job (WORLD_SIZE)")->group(g)->check(CLI::PositiveNumber);
  cmd->add_option("--rank", f.rank, "this process's rank (RANK)")->group(g)->check(CLI::NonNegativeNumber);
  cmd->add_option("--local-rank", f.local_rank, "rank on this node; picks cuda:N (LOCAL_RANK)")->group(g)
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--master-addr", f.master_addr, "host of rank 0 (MASTER_ADDR)")->group(g);
  cmd->add_option("--master-port", f.master_port, "TCP port of rank 0's store (MASTER_PORT)")->group(g)
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--dist-timeout", f.dist_timeout, "seconds before a silent peer fails the job (rendezvous, collectives)")
      ->group(g)->check(CLI::PositiveNumber)->capture_default_str();
}

model::Runtime setup(const ComputeFlags& f) {
  model::RuntimeOptions ro;
  ro.device = f.device;
  ro.threads = f.threads;
  ro.blas_threads = f.blas_as_threads ? -1 : 0;
  if (f.data_parallel) {
    ro.dist = dist::DistOptions::from_env();
    if (f.world_size > 0) ro.dist.world_size = f.world_size;
    if (f.rank >= 0) ro.dist.rank = f.rank;
    if (f.local_rank >= 0) ro.dist.local_rank = f.local_rank;
    if (!f.master_addr.empty()) ro.dist.master_addr = f.master_addr;
    if (f.master_port > 0) ro.dist.master_port = f.master_port;
    ro.dist.timeout_s = f.dist_timeout;
    ro.dist.validate();
  }
  auto rt = model::setup_runtime(ro);
  if (!rt.warning.empty()) std::cerr << "warning: " << rt.warning << "\n";
  return rt;
}

ProgressSink progress_printer() {
  const bool tty = isatty(STDERR_FILENO);
  // Without a terminal (a log file, CI, a study's child) a line every 30 s at most
  // (RESSA_PROGRESS_SECONDS overrides), plus every final line: an hour of training writes ~120
  // lines instead of thousands.
  double every = 30;
  if (const char* e = std::getenv("RESSA_PROGRESS_SECONDS"); e && *e) every = std::max(0.0, std::atof(e));
  const auto interval = std::chrono::duration<double>(every);
  auto last = std::make_shared<std::chrono::steady_clock::time_point>();
  auto printed = std::make_shared<bool>(false);
  return [tty, interval, last, printed](const std::string& line, bool final) {
    if (tty) {
      std::cerr << "\r\033[K" << line << (final ? "\n" : "") << std::flush;
      return;
    }
    const auto now = std::chrono::steady_clock::now();
    if (!final && *printed && now - *last < interval) return;
    *last = now;
    *printed = true;
    std::cerr << line << "\n";
  };
}

void check_json_flag(const ComputeFlags& f, const std::vector<std::pair<std::string, std::string>>& inputs) {
  if (!f.json_path.empty()) check_output_path("--json", f.json_path, OutputKind::File, inputs);
}

void require_dir(const std::string& flag, const std::string& path, const char* what) {
  if (!std::filesystem::is_directory(path))
    fail_arg("[", flag.substr(2), "] ", flag, " ", path, ": ", what, " not found",
             std::filesystem::exists(path) ? " (it is not a directory)" : "");
}

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  write_file_atomic(path, j.dump(2) + "\n");
}

std::pair<int, int> parse_nm_flag(const std::string& command, const std::string& text) {
  prune::SparsityPattern p;
  try {
    p = prune::SparsityPattern::parse(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[" + command + "] --pattern: " + e.what());
  }
  if (!p.is_nm()) throw std::invalid_argument("[" + command + "] --pattern expects N:M (e.g. 2:4), got '" + text + "'");
  return {p.n, p.m};
}

void info(const std::string& line) { std::cerr << line << "\n"; }

}  // namespace ressa::cli

int main(int argc, char** argv) {
  // Configure OpenBLAS before it initialises (see runtime_environment), once.
  if (!std::getenv("RESSA_REEXEC")) {
    const auto env = ressa::runtime_environment();
    if (!env.empty()) {
      for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
      setenv("RESSA_REEXEC", "1", 1);
      execv("/proc/self/exe", argv);  // on failure, continue with OpenBLAS's defaults
    }
  }
  CLI::App app{"ressa: prune, repair and deploy sparse vision-language models (LLaVA architecture)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("ressa ") + ressa::version_string());
  ressa::cli::register_data(app);
  ressa::cli::register_train(app);
  ressa::cli::register_eval(app);
  ressa::cli::register_inspect(app);
  ressa::cli::register_prune(app);
  ressa::cli::register_repair(app);
  ressa::cli::register_launch(app);
  ressa::cli::register_bench(app);
  ressa::cli::register_export(app);
  ressa::cli::register_reproduce(app);
  ressa::cli::register_generate(app);
  ressa::cli::register_tokenize(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    std::cerr << "error: " << e.what_without_backtrace() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
