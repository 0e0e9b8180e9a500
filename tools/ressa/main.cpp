// ressa: prune, repair and deploy sparse vision-language models. Entry point: registers the
// subcommands and maps errors to exit codes (0 ok, 1 runtime failure, 2 usage error), each
// reported as one "error: ..." line on stderr.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "common.h"
#include "ressa/core/atomic_file.h"
#include "ressa/core/runtime.h"

namespace ressa::cli {

void add_compute_flags(CLI::App* cmd, ComputeFlags& f, bool with_json) {
  cmd->add_option("--threads", f.threads, "compute threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--device", f.device, "cpu or cuda[:N] (cuda needs a CUDA build of libtorch)");
  if (with_json) cmd->add_option("--json", f.json_path, "write the results as one JSON object to this path");
}

model::Runtime setup(const ComputeFlags& f) {
  model::RuntimeOptions ro;
  ro.device = f.device;
  ro.threads = f.threads;
  auto rt = model::setup_runtime(ro);
  if (!rt.warning.empty()) std::cerr << "warning: " << rt.warning << "\n";
  return rt;
}

ProgressSink progress_printer() {
  const bool tty = isatty(STDERR_FILENO);
  return [tty](const std::string& line, bool final) {
    if (tty) {
      std::cerr << "\r\033[K" << line << (final ? "\n" : "") << std::flush;
    } else {
      std::cerr << line << "\n";
    }
  };
}

void write_json(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return;
  write_file_atomic(path, j.dump(2) + "\n");
}

void info(const std::string& line) { std::cerr << line << "\n"; }

}  // namespace ressa::cli

int main(int argc, char** argv) {
  // Pick OpenBLAS's kernels before it initialises (see openblas_coretype_for_cpu), once.
  if (!std::getenv("RESSA_REEXEC")) {
    const std::string core = ressa::openblas_coretype_for_cpu();
    if (!core.empty()) {
      setenv("OPENBLAS_CORETYPE", core.c_str(), 1);
      setenv("RESSA_REEXEC", "1", 1);
      execv("/proc/self/exe", argv);  // on failure, continue with the slow kernels
    }
  }
  CLI::App app{"ressa: prune, repair and deploy sparse vision-language models (LLaVA architecture)"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "ressa 0.1");
  ressa::cli::register_data(app);
  ressa::cli::register_train(app);
  ressa::cli::register_eval(app);
  ressa::cli::register_inspect(app);
  ressa::cli::register_prune(app);
  ressa::cli::register_repair(app);
  ressa::cli::register_bench(app);
  ressa::cli::register_export(app);
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
