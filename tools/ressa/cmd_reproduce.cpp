// `ressa reproduce`: the method's studies end to end (allocation, modality, repair table with
// ablations and seeds) on ShapesVQA and/or FashionVQA, as a cached job graph of ressa child
// processes, then results.json, report.md and plots.
#include <unistd.h>

#include <filesystem>
#include <sstream>
#include <thread>

#include "common.h"
#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/core/runtime.h"
#include "ressa/io/config.h"
#include "ressa/study/report.h"
#include "ressa/study/runner.h"
#include "ressa/study/studies.h"

namespace fs = std::filesystem;

namespace ressa::cli {
namespace {

std::string self_exe() {
  std::error_code ec;
  auto p = fs::read_symlink("/proc/self/exe", ec);
  RESSA_CHECK(!ec, "[reproduce] cannot find the ressa executable (/proc/self/exe)");
  return p.string();
}

// The shipped dense models (models/<task>-<preset>/) next to the build directory, if any.
std::string default_models_root(const std::string& exe) {
  for (fs::path p = fs::path(exe).parent_path(); !p.empty() && p != p.root_path(); p = p.parent_path())
    if (fs::is_directory(p / "models")) return (p / "models").string();
  return "";
}

}  // namespace

void register_reproduce(CLI::App& app) {
  struct Flags {
    std::string out, task, models = "auto";
    study::StudyOptions o;
    int jobs = 0;
    std::vector<uint64_t> seeds;
    bool reuse_older = false, report_only = false;
  };
  auto f = std::make_shared<Flags>();
  auto* cmd = app.add_subcommand("reproduce", "run the method's studies end to end: results.json, report.md, plots");
  cmd->add_option("--out", f->out, "study directory (results.json, report.md, plots/, cache/)")->required();
  cmd->add_flag("--quick", f->o.quick, "a subset of every section (about 15 minutes on 2 cores)");
  cmd->add_option("--task", f->task, "shapes, fashion or both (default: shapes with --quick, both otherwise)")
      ->check(CLI::IsMember({"shapes", "fashion", "both"}));
  cmd->add_option("--jobs", f->jobs, "child processes at a time (0 = one per core)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--threads", f->o.threads, "threads of each child process")->check(CLI::PositiveNumber)->capture_default_str();
  cmd->add_option("--seeds", f->seeds, "seeds of the Wanda and SparseGPT repair rows (default 0 1 2; --quick uses the first)");
  cmd->add_option("--repair-steps", f->o.repair_steps, "steps of every repair (default: 200 quick, 400 full)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--calib-samples", f->o.calib_samples, "calibration examples of every prune")->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--limit", f->o.eval_limit, "test examples scored per model (0 = all)")->check(CLI::NonNegativeNumber);
  cmd->add_option("--eval-limit", f->o.eval_limit)->group("")->check(CLI::NonNegativeNumber);  // earlier name of --limit
  cmd->add_option("--preset", f->o.preset, "dense model preset")->check(CLI::IsMember(io::preset_names()))
      ->capture_default_str();
  cmd->add_option("--train-steps", f->o.train_steps, "steps of dense training when a model is trained (0 = train's default)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--train-examples", f->o.train_examples, "training examples of generated datasets (0 = data's default)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--models", f->models,
                  "folder with trained dense models <task>-small/ to reuse instead of training (auto = the "
                  "repository's models/; none = always train)");
  cmd->add_option("--sections", f->o.sections,
                  "which studies to run: allocation, modality, repair (with its ablations), owl (default: all)")
      ->check(CLI::IsMember(study::study_sections()));
  cmd->add_flag("--reuse-cache-from-older", f->reuse_older,
                "reuse cached jobs made by another ressa version instead of rerunning them (the report lists them "
                "with their versions)");
  cmd->add_flag("--report-only", f->report_only,
                "rewrite report.md and plots/ from <out>/results.json without running any job")
      ->group("");  // hidden: for regenerating shipped reports
  cmd->callback([f, cmd] {
    if (f->report_only) {
      const std::string results = (fs::path(f->out) / "results.json").string();
      auto plots = study::render_report(nlohmann::json::parse(read_file(results)), f->out);
      info("wrote " + (fs::path(f->out) / "report.md").string() + " and " + std::to_string(plots.size()) +
           " plots from " + results);
      return;
    }
    auto& o = f->o;
    const std::string task = f->task.empty() ? (o.quick ? "shapes" : "both") : f->task;
    o.tasks = task == "both" ? std::vector<std::string>{"shapes", "fashion"} : std::vector<std::string>{task};
    if (!f->seeds.empty()) o.seeds = f->seeds;
    const std::string exe = self_exe();
    o.dense_dirs_root = f->models == "auto" ? default_models_root(exe) : f->models == "none" ? "" : f->models;
    if (!o.dense_dirs_root.empty() && f->models != "auto")
      RESSA_CHECK_ARG(fs::is_directory(o.dense_dirs_root), "[reproduce] --models ", o.dense_dirs_root, ": not a directory");
    const int jobs = f->jobs > 0 ? f->jobs : std::max(1, hardware_threads() / o.threads);
    const std::string cache = (fs::path(f->out) / "cache").string();
    auto s = study::plan_study(o, cache);  // validates before anything is written
    fs::create_directories(cache);
    info("reproduce: " + std::to_string(s.graph.order().size()) + " jobs (" + std::to_string(s.rows.size()) +
         " result rows), " + std::to_string(jobs) + " at a time, cache " + cache +
         (o.dense_dirs_root.empty() ? "" : ", dense models from " + o.dense_dirs_root));
    study::RunOptions ro;
    ro.binary = exe;
    ro.jobs = std::max(1, jobs);
    ro.progress = progress_printer();
    ro.reuse_older = f->reuse_older;
    study::ReportInfo ri;
    ri.options = o;
    ri.run = study::run_jobs(s.graph, ro);
    std::ostringstream cl;
    cl << "ressa reproduce --out " << f->out << (o.quick ? " --quick" : "") << " --task " << task
       << (f->reuse_older ? " --reuse-cache-from-older" : "");
    if (o.sections != study::StudyOptions().sections) {
      cl << " --sections";
      for (const auto& sec : o.sections) cl << " " << sec;
    }
    ri.command = cl.str();
    auto plots = study::write_report(s, ri, f->out);
    if (!ri.run.reused_older.empty())
      info("reproduce: " + std::to_string(ri.run.reused_older.size()) +
           " jobs reused from the cache of another ressa version (--reuse-cache-from-older); the report lists them");
    info("wrote " + (fs::path(f->out) / "report.md").string() + ", results.json and " + std::to_string(plots.size()) +
         " plots" + (ri.run.failed.empty() ? "" : "; " + std::to_string(ri.run.failed.size()) + " jobs failed (see report)"));
    if (!ri.run.failed.empty()) fail("[reproduce] ", ri.run.failed.size(), " jobs failed; first: ", ri.run.failed.begin()->first, ": ",
                                    ri.run.failed.begin()->second);
  });
}

}  // namespace ressa::cli
