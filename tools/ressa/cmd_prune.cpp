// `ressa prune` (whole-model pruning of both towers with per-tower patterns) and
// `ressa prune-tensor` (one matrix from safetensors files, for cross-checking implementations).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>

#include "common.h"
#include "ressa/core/atomic_file.h"
#include "ressa/core/units.h"
#include "ressa/prune/driver.h"
#include "ressa/prune/prune_tensor.h"
#include "ressa/prune/recipe_options.h"

namespace ressa::cli {
namespace {

// Peak resident set size of this process (VmHWM of /proc/self/status) in MiB; 0 if unknown.
double peak_rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::strtod(line.c_str() + 6, nullptr) / 1024.0;
  return 0;
}

// The pattern a flag asks for; errors name the flag.
prune::SparsityPattern flag_pattern(const std::string& flag, const std::string& text, bool want_nm) {
  if (want_nm && text.find(':') == std::string::npos)
    throw std::invalid_argument("[prune] " + flag + " expects N:M (e.g. 2:4), got '" + text +
                                "' (an unstructured ratio goes in the matching *-sparsity flag)");
  try {
    return prune::SparsityPattern::parse(text);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[prune] " + flag + ": " + e.what());
  }
}

prune::SparsityPattern flag_ratio(const std::string& flag, double v) {
  try {
    return prune::SparsityPattern::unstructured(v);
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument("[prune] " + flag + ": " + e.what());
  }
}

struct PruneFlags {
  ComputeFlags c;
  std::string model, data, image_folder, out, method, pattern, vision_pattern, language_pattern;
  std::string calib = "sequential", granularity = "row", dsnot_base = "wanda", hessian_dtype = "float32";
  double sparsity = 0, vision_sparsity = 0, language_sparsity = 0;
  int64_t calib_samples = 128, calib_batch = 16;
  uint64_t seed = 0;
  bool prune_projector = false, prune_lm_head = false;
  std::string allocation = "uniform", recipe;
  double owl_threshold = 5.0, owl_lambda = 0.08;
  std::vector<std::string> targets, ignore, overrides;
  std::string max_memory;
  CLI::Option *o_s = nullptr, *o_p = nullptr, *o_vs = nullptr, *o_vp = nullptr, *o_ls = nullptr, *o_lp = nullptr;
  std::vector<CLI::Option*> pruning;  // the flags a recipe replaces
};

// The calibration settings, which stay flags with or without a recipe.
void set_calibration(const PruneFlags& f, prune::PruneModelOptions& o) {
  o.calib = prune::parse_calib(f.calib);
  o.calib_samples = f.calib_samples;
  o.calib_batch = f.calib_batch;
  o.seed = f.seed;
  o.method_opts.hessian_dtype = prune::parse_hessian_dtype(f.hessian_dtype);
  if (!f.max_memory.empty()) o.max_memory = parse_byte_size(f.max_memory, "--max-memory");
}

prune::PruneModelOptions options_from_flags(const PruneFlags& f) {
  prune::PruneModelOptions o;
  if (f.method.empty()) throw std::invalid_argument("[prune] give --method (magnitude, wanda, sparsegpt or dsnot) or --recipe");
  o.method = prune::parse_method(f.method);
  const bool has_s = f.o_s->count() > 0, has_p = f.o_p->count() > 0;
  if (has_s == has_p)
    throw std::invalid_argument(std::string("[prune] give exactly one of --sparsity F or --pattern N:M (got ") +
                                (has_s ? "both" : "neither") + ")");
  const auto base = has_s ? flag_ratio("--sparsity", f.sparsity) : flag_pattern("--pattern", f.pattern, true);
  o.vision = f.o_vs->count() ? flag_ratio("--vision-sparsity", f.vision_sparsity)
             : f.o_vp->count() ? flag_pattern("--vision-pattern", f.vision_pattern, true)
                               : base;
  o.language = f.o_ls->count() ? flag_ratio("--language-sparsity", f.language_sparsity)
               : f.o_lp->count() ? flag_pattern("--language-pattern", f.language_pattern, true)
                                 : base;
  set_calibration(f, o);
  o.prune_projector = f.prune_projector;
  o.prune_lm_head = f.prune_lm_head;
  o.method_opts.granularity = prune::parse_granularity(f.granularity);
  o.method_opts.dsnot_base = prune::parse_method(f.dsnot_base);
  o.allocation = prune::parse_allocation(f.allocation);
  o.owl.threshold = f.owl_threshold;
  o.owl.lambda = f.owl_lambda;
  for (const auto& t : f.targets) o.rules.targets.push_back(prune::NamePattern::parse(t));
  for (const auto& i : f.ignore) o.rules.ignore.push_back(prune::NamePattern::parse(i));
  for (const auto& ov : f.overrides) o.rules.overrides.push_back(prune::PatternOverride::parse(ov));
  return o;
}

prune::PruneModelOptions options_from_recipe(const PruneFlags& f) {
  for (const auto* opt : f.pruning)
    if (opt->count() > 0)
      throw std::invalid_argument("[prune] --recipe " + f.recipe + " sets the pruning; " + opt->get_name() +
                                  " cannot be given with it (edit the recipe instead)");
  prune::PruneModelOptions o;
  set_calibration(f, o);
  return prune::apply_recipe(io::load_pruning_recipe(f.recipe), o);
}

}  // namespace

void register_prune(CLI::App& app) {
  auto f = std::make_shared<PruneFlags>();
  auto* cmd = app.add_subcommand("prune", "prune the Linear layers of both towers (magnitude, Wanda, SparseGPT, DSnoT)");
  cmd->add_option("--model", f->model, "dense model directory")->required();
  cmd->add_option("--data", f->data,
                  "dataset directory (calibration examples come from its train split), or a LLaVA conversation file "
                  "(FILE.json)")
      ->required();
  cmd->add_option("--image-folder", f->image_folder,
                  "LLaVA conversation file: its image paths are relative to this directory (default: the file's)");
  cmd->add_option("--method", f->method, "magnitude, wanda, sparsegpt or dsnot (or give --recipe)");
  f->o_s = cmd->add_option("--sparsity", f->sparsity, "unstructured sparsity ratio in [0, 1) for both towers");
  f->o_p = cmd->add_option("--pattern", f->pattern, "N:M pattern for both towers (N zeros in every M weights), e.g. 2:4");
  f->o_vs = cmd->add_option("--vision-sparsity", f->vision_sparsity, "vision tower ratio (0 = leave it dense)");
  f->o_ls = cmd->add_option("--language-sparsity", f->language_sparsity, "language model ratio (0 = leave it dense)");
  f->o_vp = cmd->add_option("--vision-pattern", f->vision_pattern, "N:M pattern for the vision tower");
  f->o_lp = cmd->add_option("--language-pattern", f->language_pattern, "N:M pattern for the language model");
  f->o_s->excludes(f->o_p);
  f->o_vs->excludes(f->o_vp);
  f->o_ls->excludes(f->o_lp);
  cmd->add_option("--calib", f->calib, "sequential (blocks see the pruned blocks' outputs) or dense");
  cmd->add_option("--calib-samples", f->calib_samples, "calibration examples drawn from the train split");
  cmd->add_option("--calib-batch", f->calib_batch, "calibration sequences per forward pass");
  cmd->add_option("--hessian-dtype", f->hessian_dtype,
                  "SparseGPT's Hessian, factorisation and update: float32 (half the memory) or float64");
  cmd->add_option("--max-memory", f->max_memory,
                  "memory the run may take, e.g. 6G: calibration activations past what the model's working set "
                  "leaves go to a scratch file beside --out (default: all in memory)");
  cmd->add_option("--granularity", f->granularity, "unstructured quota per output row (row) or per matrix (matrix)");
  cmd->add_option("--dsnot-base", f->dsnot_base, "DSnoT's initial mask: wanda, magnitude or sparsegpt");
  cmd->add_flag("--prune-projector", f->prune_projector, "also prune the projector (language pattern)");
  cmd->add_flag("--prune-lm-head", f->prune_lm_head, "also prune lm_head (language pattern)");
  cmd->add_option("--seed", f->seed, "which calibration examples are drawn");
  cmd->add_option("--allocation", f->allocation,
                  "uniform (every block at the tower's ratio) or owl (outlier-weighed per block, same mean; unstructured only)");
  cmd->add_option("--owl-threshold", f->owl_threshold, "OWL's M: a score is an outlier above M x its block's mean")
      ->capture_default_str();
  cmd->add_option("--owl-lambda", f->owl_lambda, "OWL's lambda: how far block ratios move from the tower's")
      ->capture_default_str();
  cmd->add_option("--targets", f->targets,
                  "prune only the Linears these name patterns match: 'Linear' (both towers' blocks), 're:<regex>' "
                  "or an exact module name (repeatable)");
  cmd->add_option("--ignore", f->ignore, "never prune the Linears these name patterns match (repeatable)");
  cmd->add_option("--override", f->overrides,
                  "NAMES=PATTERN: this ratio or N:M for the Linears NAMES matches, e.g. 're:.*mlp.*=0.6' (repeatable; "
                  "the first match wins)");
  cmd->add_option("--recipe", f->recipe,
                  "llm-compressor recipe (YAML) with one pruning modifier, instead of the pruning flags "
                  "(docs/recipes.md)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--out", f->out, "pruned model directory to write")->required();
  add_compute_flags(cmd, f->c, true);
  for (const char* name : {"--method", "--sparsity", "--pattern", "--vision-sparsity", "--language-sparsity",
                           "--vision-pattern", "--language-pattern", "--granularity", "--dsnot-base", "--prune-projector",
                           "--prune-lm-head", "--allocation", "--owl-threshold", "--owl-lambda", "--targets", "--ignore",
                           "--override"})
    f->pruning.push_back(cmd->get_option(name));
  cmd->callback([f] {
    const auto t0 = std::chrono::steady_clock::now();
    // Every flag is checked before anything is loaded or written.
    prune::PruneModelOptions o = f->recipe.empty() ? options_from_flags(*f) : options_from_recipe(*f);
    o.validate();
    check_json_flag(f->c, {{"--model", f->model}, {"--data", f->data}, {"--out", f->out}});
    // Pruning a real-sized model is large GEMMs (calibration forward passes, XᵀX, SparseGPT's
    // updates) and Cholesky factorisations, one at a time: OpenBLAS gets --threads, not the
    // one thread it gets under torch's pool elsewhere (docs/threads.md).
    f->c.blas_as_threads = true;
    auto rt = setup(f->c);
    auto rep = prune::prune_model_dir(f->model, data::DataSource(f->data, f->image_folder), f->out, o, rt.device, progress_printer());
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rss = peak_rss_mb();

    nlohmann::json layers = nlohmann::json::array();
    double err_sum = 0;
    for (const auto& l : rep.layers) {
      layers.push_back({{"name", l.name},
                        {"tower", l.tower},
                        {"pattern", l.pattern},
                        {"sparsity", l.sparsity},
                        {"recon_error", l.recon_error},
                        {"seconds", l.seconds},
                        {"calib_rows", l.calib_rows}});
      err_sum += l.recon_error;
    }
    const auto& sp = rep.sparsity;
    const std::string pattern = prune::combined_pattern(o.vision, o.language);
    char line[512];
    std::snprintf(line, sizeof line,
                  "pruned %s (%s, %s, %s calibration on %lld samples): sparsity vision %.4f language %.4f overall %.4f "
                  "model %.4f; mean recon error %.4g; %.1f s, peak RSS %.0f MB",
                  f->out.c_str(), prune::to_string(o.method).c_str(), pattern.c_str(), prune::to_string(o.calib).c_str(),
                  static_cast<long long>(rep.calib_samples), sp.vision, sp.language, sp.overall, sp.model,
                  rep.layers.empty() ? 0.0 : err_sum / rep.layers.size(), seconds, rss);
    std::cout << line << "\n";
    write_json(f->c.json_path, {{"method", prune::to_string(o.method)},
                                {"pattern", pattern},
                                {"vision_pattern", o.vision.to_string()},
                                {"language_pattern", o.language.to_string()},
                                {"granularity", prune::to_string(o.method_opts.granularity)},
                                {"allocation", prune::to_string(o.allocation)},
                                {"calib", prune::to_string(o.calib)},
                                {"calib_samples", rep.calib_samples},
                                {"seed", o.seed},
                                {"out", f->out},
                                {"seconds", seconds},
                                {"prune_seconds", rep.seconds},
                                {"peak_rss_mb", rss},
                                {"activation_spill_mb", static_cast<double>(rep.activation_spill_bytes) / 1048576.0},
                                {"threads", rt.threads},
                                {"blas_threads", rt.blas_threads},
                                {"sparsity",
                                 {{"vision", sp.vision}, {"language", sp.language}, {"overall", sp.overall}, {"model", sp.model}}},
                                {"layers", layers}});
  });

  // ---- prune-tensor ----
  struct TensorFlags {
    ComputeFlags c;
    std::string weight, inputs, out, method, pattern, granularity = "row", dsnot_base = "wanda";
    double sparsity = 0;
    CLI::Option *o_s = nullptr, *o_p = nullptr;
  };
  auto t = std::make_shared<TensorFlags>();
  auto* tc = app.add_subcommand("prune-tensor", "prune one matrix: W.safetensors ('weight' [d_out,d_in]) with "
                                                "calibration X.safetensors ('inputs' [n,d_in])");
  tc->add_option("--weight", t->weight, "safetensors file holding 'weight' [d_out, d_in]")->required()->check(CLI::ExistingFile);
  tc->add_option("--inputs", t->inputs, "safetensors file holding 'inputs' [n, d_in]")->required()->check(CLI::ExistingFile);
  tc->add_option("--method", t->method, "magnitude, wanda, sparsegpt or dsnot")->required();
  t->o_s = tc->add_option("--sparsity", t->sparsity, "unstructured sparsity ratio in [0, 1)");
  t->o_p = tc->add_option("--pattern", t->pattern, "N:M pattern, e.g. 2:4");
  t->o_s->excludes(t->o_p);
  tc->add_option("--granularity", t->granularity, "unstructured quota per output row (row) or per matrix (matrix)");
  tc->add_option("--dsnot-base", t->dsnot_base, "DSnoT's initial mask: wanda, magnitude or sparsegpt");
  tc->add_option("--out", t->out, "output safetensors: 'weight' (F32) and 'mask' (U8, 1 = kept)")->required();
  tc->add_option("--threads", t->c.threads, "compute threads (0 = all cores)")->check(CLI::NonNegativeNumber);
  tc->callback([t] {
    const auto method = prune::parse_method(t->method);
    const bool has_s = t->o_s->count() > 0, has_p = t->o_p->count() > 0;
    if (has_s == has_p)
      throw std::invalid_argument(std::string("[prune-tensor] give exactly one of --sparsity F or --pattern N:M (got ") +
                                  (has_s ? "both" : "neither") + ")");
    const auto pattern = has_s ? flag_ratio("--sparsity", t->sparsity) : flag_pattern("--pattern", t->pattern, true);
    prune::MethodOptions mo;
    mo.granularity = prune::parse_granularity(t->granularity);
    mo.dsnot_base = prune::parse_method(t->dsnot_base);
    mo.validate();
    check_output_path("--out", t->out, OutputKind::File, {{"--weight", t->weight}, {"--inputs", t->inputs}});
    setup(t->c);
    prune::prune_tensor_file(t->weight, t->inputs, method, pattern, mo, t->out);
    info("wrote " + t->out + " (" + prune::to_string(method) + ", " + pattern.to_string() + ")");
  });
}

}  // namespace ressa::cli
