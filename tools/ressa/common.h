// Shared pieces of the ressa CLI: the subcommand registry, common flags (--threads, --device,
// --json), the progress printer and JSON output.
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ressa/core/progress.h"
#include "ressa/model/device.h"

namespace ressa::cli {

struct ComputeFlags {
  int threads = 0;
  std::string device = "cpu";
  std::string json_path;
  // Data parallelism (add_dist_flags): -1 / "" = take it from the environment (dist/group.h).
  bool data_parallel = false;
  int world_size = -1, rank = -1, local_rank = -1, master_port = -1;
  std::string master_addr;
  double dist_timeout = 60;
  bool blas_as_threads = false;  // OpenBLAS pool = --threads (bench of one GEMM at a time); else 1
};

// Adds --threads and --device (and --json when with_json) to a subcommand.
void add_compute_flags(CLI::App* cmd, ComputeFlags& f, bool with_json);
// Adds --world-size, --rank, --local-rank, --master-addr, --master-port, --dist-timeout
// (defaults from WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT) to a subcommand
// that runs data-parallel.
void add_dist_flags(CLI::App* cmd, ComputeFlags& f);
// Applies --threads/--device, joins the process group when the job has several processes;
// prints a warning line if the BLAS is slow.
model::Runtime setup(const ComputeFlags& f);
// Progress printer: a redrawn line on a terminal, periodic plain lines otherwise.
ProgressSink progress_printer();
// Checks --json (when given) before any work: it must not be or contain one of `inputs`
// ({flag, path}; pass --out too) and its directory must exist or be creatable (exit 2 otherwise).
void check_json_flag(const ComputeFlags& f, const std::vector<std::pair<std::string, std::string>>& inputs);
// Checks that a directory flag names an existing directory (std::invalid_argument, exit 2).
void require_dir(const std::string& flag, const std::string& path, const char* what);
// Writes `j` to path atomically (no-op for an empty path).
void write_json(const std::string& path, const nlohmann::json& j);
// (N, M) of an "N:M" --pattern value (prune::SparsityPattern's rules); std::invalid_argument
// "[<command>] --pattern ..." otherwise.
std::pair<int, int> parse_nm_flag(const std::string& command, const std::string& text);
// Prints an informational line to stderr.
void info(const std::string& line);

// Each subcommand file defines one of these; main.cpp registers them all.
void register_data(CLI::App& app);
void register_train(CLI::App& app);
void register_eval(CLI::App& app);
void register_inspect(CLI::App& app);
void register_prune(CLI::App& app);
void register_repair(CLI::App& app);
void register_launch(CLI::App& app);
void register_bench(CLI::App& app);
void register_export(CLI::App& app);
void register_reproduce(CLI::App& app);
void register_generate(CLI::App& app);
void register_tokenize(CLI::App& app);

}  // namespace ressa::cli
