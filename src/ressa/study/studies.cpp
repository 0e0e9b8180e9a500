// The studies as a job graph (see studies.h).
#include "ressa/study/studies.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "ressa/core/error.h"

namespace fs = std::filesystem;

namespace ressa::study {
namespace {

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  while (s.size() > 1 && s.back() == '0') s.pop_back();
  if (s.back() == '.') s.pop_back();
  return s;
}

// A sparsity setting for `ressa prune`: its flags and what it means per tower.
struct Sparsity {
  std::string label;               // "70%", "2:4", "30:70", "language 50%"
  std::vector<std::string> flags;  // prune flags
  nlohmann::json config;
};

Sparsity unstructured(double r) {
  return {num(100 * r) + "%", {"--sparsity", num(r)},
          {{"pattern", "unstructured"}, {"sparsity", r}, {"vision_target", r}, {"language_target", r}}};
}
Sparsity nm(const std::string& p) {
  return {p, {"--pattern", p}, {{"pattern", p}, {"vision_target", p}, {"language_target", p}}};
}
Sparsity split(double vs, double ls) {
  return {num(100 * vs) + ":" + num(100 * ls),
          {"--sparsity", num(ls), "--vision-sparsity", num(vs), "--language-sparsity", num(ls)},
          {{"pattern", "unstructured"}, {"vision_target", vs}, {"language_target", ls}}};
}
// Restricts a setting to one tower (the other stays dense).
Sparsity only(Sparsity s, const std::string& tower) {
  s.flags.push_back(tower == "vision" ? "--language-sparsity" : "--vision-sparsity");
  s.flags.push_back("0");
  s.config[tower == "vision" ? "language_target" : "vision_target"] = 0;
  s.label = tower + " " + s.label;
  return s;
}

double prune_cost(const std::string& method) {
  if (method == "magnitude") return 8;
  if (method == "wanda") return 15;
  if (method == "sparsegpt") return 45;
  return 30;  // dsnot
}

struct Builder {
  const StudyOptions& o;
  Study& s;
  int64_t repair_steps;

  std::string threads() const { return std::to_string(o.threads); }

  std::string data(const std::string& task, uint64_t seed) {
    std::vector<std::string> a{"data", "--task", task, "--seed", std::to_string(seed), "--threads", threads()};
    if (o.train_examples > 0) a.insert(a.end(), {"--train", std::to_string(o.train_examples)});
    return s.graph.add("data", a, {}, "--out", "", 20, {{"task", task}, {"seed", seed}});
  }
  std::string dense(const std::string& task, uint64_t seed, const std::string& data_id) {
    if (seed == 0 && !o.dense_dirs_root.empty()) {
      const fs::path shipped = fs::path(o.dense_dirs_root) / (task + "-" + o.preset);
      if (fs::exists(shipped / "model.safetensors"))
        return s.graph.add_existing("dense", shipped.string(),
                                    {{"task", task}, {"seed", seed}, {"preset", o.preset}, {"shipped", true}});
    }
    // FashionVQA's photos need 8x8 patches (io::preset_config); the study's preset names the size.
    const std::string preset = task == "fashion" && o.preset == "small" ? "small-p8" : o.preset;
    std::vector<std::string> a{"train", "--data", s.graph.out(data_id), "--preset", preset, "--seed", std::to_string(seed),
                               "--threads", threads(), "--json", "{out}.json"};
    if (o.train_steps > 0) a.insert(a.end(), {"--steps", std::to_string(o.train_steps)});
    return s.graph.add("train", a, {data_id}, "--out", "", 900, {{"task", task}, {"seed", seed}, {"preset", preset}},
                       true);
  }
  std::string eval(const std::string& model_id, const std::string& data_id, bool blind = false) {
    std::vector<std::string> a{"eval", "--model", s.graph.out(model_id), "--data", s.graph.out(data_id),
                               "--split", "test", "--threads", threads()};
    if (blind) a.push_back("--blind");
    if (o.eval_limit > 0) a.insert(a.end(), {"--limit", std::to_string(o.eval_limit)});
    return s.graph.add("eval", a, {model_id, data_id}, "--json", ".json", 20, {{"blind", blind}});
  }
  std::string prune(const std::string& dense_id, const std::string& data_id, const std::string& method,
                    const Sparsity& sp, uint64_t seed) {
    std::vector<std::string> a{"prune", "--model", s.graph.out(dense_id), "--data", s.graph.out(data_id),
                               "--method", method};
    a.insert(a.end(), sp.flags.begin(), sp.flags.end());
    a.insert(a.end(), {"--calib-samples", std::to_string(o.calib_samples), "--seed", std::to_string(seed),
                       "--threads", threads(), "--json", "{out}.json"});
    nlohmann::json c = sp.config;
    c["method"] = method;
    c["calib_samples"] = o.calib_samples;
    c["calib_seed"] = seed;
    return s.graph.add("prune", a, {dense_id, data_id}, "--out", "", prune_cost(method), c);
  }
  std::string repair(const std::string& dense_id, const std::string& pruned_id, const std::string& data_id,
                     const std::string& adapter, double kd, const std::string& targets, uint64_t seed) {
    std::vector<std::string> a{"repair", "--dense", s.graph.out(dense_id), "--pruned", s.graph.out(pruned_id),
                               "--data", s.graph.out(data_id), "--adapter", adapter, "--kd-weight", num(kd),
                               "--targets", targets, "--steps", std::to_string(repair_steps),
                               "--seed", std::to_string(seed), "--val-limit", "0", "--threads", threads(),
                               "--json", "{out}.json"};
    return s.graph.add("repair", a, {dense_id, pruned_id, data_id}, "--out", "", 0.45 * repair_steps + 15,
                       {{"adapter", adapter}, {"kd_weight", kd}, {"targets", targets}, {"steps", repair_steps},
                        {"repair_seed", seed}},
                       true);
  }
  void row(const std::string& section, const std::string& task, nlohmann::json config, const std::string& eval_id,
           const std::string& prune_id = "", const std::string& repair_id = "") {
    s.rows.push_back({section, task, std::move(config), eval_id, prune_id, repair_id});
  }

  void task(const std::string& t) {
    const std::string d = data(t, 0);
    const std::string dn = dense(t, 0, d);
    s.dense_eval[t] = eval(dn, d);
    s.dense_blind_eval[t] = eval(dn, d, true);
    s.task_info[t] = {{"data_seed", 0}, {"dense", s.graph.at(dn).config}, {"dense_dir", s.graph.out(dn)}};

    if (o.runs("allocation")) tower_allocation(t, d, dn);
    if (o.runs("modality")) modality(t, d, dn);
    if (o.runs("repair")) repair_table(t, d, dn);
    if (o.runs("owl")) layer_allocation(t, d, dn);
  }

  // 1. Allocation: Wanda, unstructured, prune only; s_v + s_l = 100% and 120%.
  void tower_allocation(const std::string& t, const std::string& d, const std::string& dn) {
    std::vector<std::pair<double, double>> splits;
    if (o.quick) {
      for (double v : {0.1, 0.3, 0.5, 0.7, 0.9}) splits.push_back({v, 1.0 - v});
    } else {
      for (int v = 1; v <= 9; ++v) splits.push_back({v / 10.0, 1.0 - v / 10.0});
      for (int v = 3; v <= 9; ++v) splits.push_back({v / 10.0, 1.2 - v / 10.0});
    }
    for (auto [v, l] : splits) {
      const Sparsity sp = split(v, l);
      const std::string p = prune(dn, d, "wanda", sp, 0);
      nlohmann::json c = sp.config;
      c.update({{"method", "wanda"}, {"budget", std::round((v + l) * 100)}, {"split", sp.label}});
      row("allocation", t, c, eval(p, d), p);
    }

  }

  // 2. Modality: both towers, language only, vision only.
  void modality(const std::string& t, const std::string& d, const std::string& dn) {
    std::vector<Sparsity> levels;
    if (o.quick) {
      levels = {unstructured(0.5), unstructured(0.7), nm("2:4")};
    } else {
      for (int r = 1; r <= 7; ++r) levels.push_back(unstructured(r / 10.0));
      levels.push_back(nm("4:8"));
      levels.push_back(nm("2:4"));
    }
    for (const auto& lv : levels) {
      for (const std::string mode : {"both", "language", "vision"}) {
        const Sparsity sp = mode == "both" ? lv : only(lv, mode);
        const std::string p = prune(dn, d, "wanda", sp, 0);
        nlohmann::json c = sp.config;
        c.update({{"method", "wanda"}, {"modality", mode}, {"level", lv.label}});
        row("modality", t, c, eval(p, d), p);
      }
    }

  }

  // 3. Repair table: methods x patterns, prune only and prune + RESSA (sparse-lora, KD), then
  // ablations.
  void repair_table(const std::string& t, const std::string& d, const std::string& dn) {
    const std::vector<std::string> methods =
        o.quick ? std::vector<std::string>{"wanda", "sparsegpt"}
                : std::vector<std::string>{"magnitude", "wanda", "sparsegpt", "dsnot"};
    const std::vector<Sparsity> patterns = o.quick ? std::vector<Sparsity>{unstructured(0.7), nm("2:4")}
                                                   : std::vector<Sparsity>{unstructured(0.5), unstructured(0.7),
                                                                           nm("2:4"), nm("4:8")};
    const std::vector<uint64_t> seeds = o.quick ? std::vector<uint64_t>{o.seeds.at(0)} : o.seeds;
    for (const auto& m : methods) {
      for (const auto& pat : patterns) {
        const bool seeded = m == "wanda" || m == "sparsegpt";
        for (uint64_t seed : seeded ? seeds : std::vector<uint64_t>{seeds.at(0)}) {
          const std::string p = prune(dn, d, m, pat, seed);
          nlohmann::json c = pat.config;
          c.update({{"method", m}, {"level", pat.label}, {"seed", seed}});
          nlohmann::json cp = c;
          cp["stage"] = "prune";
          row("repair", t, cp, eval(p, d), p);
          const std::string r = repair(dn, p, d, "sparse-lora", 0.1, "vision,language,projector", seed);
          nlohmann::json cr = c;
          cr.update({{"stage", "ressa"}, {"adapter", "sparse-lora"}, {"kd_weight", 0.1}});
          row("repair", t, cr, eval(r, d), p, r);
        }
      }
    }

    // Ablations on Wanda at 2:4 and 70%: plain LoRA, masked finetuning, no KD, language-only adapters.
    struct Ablation {
      std::string name, adapter;
      double kd;
      std::string targets;
    };
    std::vector<Ablation> abl{{"lora", "lora", 0.1, "vision,language,projector"},
                              {"masked-ft", "masked-ft", 0.1, "vision,language,projector"},
                              {"no-kd", "sparse-lora", 0.0, "vision,language,projector"},
                              {"language-only", "sparse-lora", 0.1, "language"}};
    if (o.quick) abl.resize(1);
    for (const auto& pat : o.quick ? std::vector<Sparsity>{nm("2:4")} : std::vector<Sparsity>{nm("2:4"), unstructured(0.7)}) {
      const std::string p = prune(dn, d, "wanda", pat, seeds.at(0));
      for (const auto& a : abl) {
        const std::string r = repair(dn, p, d, a.adapter, a.kd, a.targets, seeds.at(0));
        nlohmann::json c = pat.config;
        c.update({{"method", "wanda"}, {"level", pat.label}, {"ablation", a.name}, {"adapter", a.adapter},
                  {"kd_weight", a.kd}, {"targets", a.targets}, {"seed", seeds.at(0)}});
        row("ablation", t, c, eval(r, d), p, r);
      }
    }
  }

  // 4. Layer-wise allocation: uniform vs OWL (docs/method.md §1) for Wanda and SparseGPT at
  // 60/70/80% unstructured, prune only and + RESSA.
  void layer_allocation(const std::string& t, const std::string& d, const std::string& dn) {
    const uint64_t seed = o.seeds.at(0);
    for (const std::string m : {"wanda", "sparsegpt"}) {
      for (double level : o.quick ? std::vector<double>{0.7} : std::vector<double>{0.6, 0.7, 0.8}) {
        for (const std::string alloc : {"uniform", "owl"}) {
          Sparsity sp = unstructured(level);
          if (alloc == "owl") sp.flags.insert(sp.flags.end(), {"--allocation", "owl"});  // uniform: the repair table's job
          const std::string p = prune(dn, d, m, sp, seed);
          nlohmann::json c = sp.config;
          c.update({{"method", m}, {"level", sp.label}, {"allocation", alloc}, {"seed", seed}, {"stage", "prune"}});
          row("owl", t, c, eval(p, d), p);
          const std::string r = repair(dn, p, d, "sparse-lora", 0.1, "vision,language,projector", seed);
          c.update({{"stage", "ressa"}, {"adapter", "sparse-lora"}, {"kd_weight", 0.1}});
          row("owl", t, c, eval(r, d), p, r);
        }
      }
    }
  }
};

}  // namespace

const std::vector<std::string>& study_sections() {
  static const std::vector<std::string> names{"allocation", "modality", "repair", "owl"};
  return names;
}

bool StudyOptions::runs(const std::string& section) const {
  return std::find(sections.begin(), sections.end(), section) != sections.end();
}

Study plan_study(const StudyOptions& opts, const std::string& cache_dir) {
  for (const auto& sec : opts.sections)
    RESSA_CHECK_ARG(std::find(study_sections().begin(), study_sections().end(), sec) != study_sections().end(),
                    "[reproduce] --sections: unknown study '", sec, "' (expected allocation, modality, repair or owl)");
  RESSA_CHECK_ARG(!opts.tasks.empty(), "[reproduce] no task selected");
  RESSA_CHECK_ARG(!opts.seeds.empty(), "[reproduce] no seed given");
  for (const auto& t : opts.tasks)
    RESSA_CHECK_ARG(t == "shapes" || t == "fashion", "[reproduce] --task must be shapes, fashion or both, got '", t, "'");
  Study s(cache_dir);
  Builder b{opts, s, opts.repair_steps > 0 ? opts.repair_steps : (opts.quick ? 200 : 400)};
  for (const auto& t : opts.tasks) b.task(t);
  return s;
}

}  // namespace ressa::study
