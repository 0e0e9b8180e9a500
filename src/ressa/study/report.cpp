// results.json, report.md and gnuplot plots of a study (see report.h).
#include "ressa/study/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <tuple>

#include "ressa/core/atomic_file.h"
#include "ressa/core/cpu_info.h"
#include "ressa/core/error.h"
#include "ressa/core/version.h"
#include "ressa/study/cache.h"

namespace fs = std::filesystem;
using nlohmann::json;

namespace ressa::study {

std::string path_relative_to(const std::string& path, const std::string& dir) {
  if (path.empty()) return "";
  std::error_code ec;
  const fs::path rel = fs::relative(path, dir, ec);
  if (ec || rel.empty()) return fs::path(path).filename().string();
  return rel.string();
}

namespace {

// ---- numbers -------------------------------------------------------------------------------

json read_json_or_null(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  try {
    return json::parse(in);
  } catch (const std::exception&) {
    return nullptr;
  }
}

std::string pct(double v) {
  char b[32];
  if (std::isnan(v)) return "—";
  std::snprintf(b, sizeof b, "%.1f", 100 * v);
  return b;
}
// j[key] as a double; NaN when j is not an object, lacks key, or holds null there (the row of a
// job that failed or did not run).
double num(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : std::nan("");
}
std::string pct_or_dash(const json& j, const char* key) { return pct(num(j, key)); }
double acc_of(const json& r) { return num(r, "accuracy"); }
std::string str_or(const json& j, const char* key, const std::string& dflt) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : dflt;
}

struct MeanStd {
  double mean = std::nan(""), std = 0;
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& v) {
  MeanStd m;
  std::vector<double> x;
  for (double d : v)
    if (!std::isnan(d)) x.push_back(d);
  m.n = static_cast<int>(x.size());
  if (x.empty()) return m;
  double s = 0;
  for (double d : x) s += d;
  m.mean = s / x.size();
  if (x.size() > 1) {
    double q = 0;
    for (double d : x) q += (d - m.mean) * (d - m.mean);
    m.std = std::sqrt(q / (x.size() - 1));  // sample standard deviation
  }
  return m;
}
std::string fmt(const MeanStd& m) {
  if (m.n == 0) return "—";
  char b[64];
  if (m.n > 1) std::snprintf(b, sizeof b, "%.1f ± %.1f", 100 * m.mean, 100 * m.std);
  else std::snprintf(b, sizeof b, "%.1f", 100 * m.mean);
  return b;
}

double dense_acc(const json& results, const std::string& task) { return num(results["tasks"][task], "dense_accuracy"); }

// The repair rows of one task grouped by (method, sparsity level), in the order they appear.
struct RepairGroup {
  std::string method, level;
  std::vector<double> prune, ressa;            // accuracies over seeds
  std::vector<double> sp_prune, sp_ressa;      // overall sparsity over seeds
};
std::vector<RepairGroup> repair_groups(const json& rows, const std::string& task) {
  std::vector<RepairGroup> groups;
  for (const auto& r : rows) {
    if (r["section"] != "repair" || r["task"] != task) continue;
    const std::string m = r["method"], lv = r["level"];
    auto it = std::find_if(groups.begin(), groups.end(), [&](const auto& g) { return g.method == m && g.level == lv; });
    if (it == groups.end()) it = groups.insert(groups.end(), RepairGroup{m, lv, {}, {}, {}, {}});
    const double sp = r.contains("sparsity") ? num(r["sparsity"], "overall") : std::nan("");
    const bool prune = r["stage"] == "prune";
    (prune ? it->prune : it->ressa).push_back(acc_of(r));
    (prune ? it->sp_prune : it->sp_ressa).push_back(sp);
  }
  return groups;
}

// The allocation rows of one task and budget, sorted by vision sparsity.
std::vector<const json*> allocation_points(const json& rows, const std::string& task, int budget) {
  std::vector<const json*> pts;
  for (const auto& r : rows)
    if (r["section"] == "allocation" && r["task"] == task && r["budget"].get<double>() == budget) pts.push_back(&r);
  std::sort(pts.begin(), pts.end(),
            [](const json* a, const json* b) { return (*a)["vision_target"].get<double>() < (*b)["vision_target"].get<double>(); });
  return pts;
}

// The modality rows of one task: levels in order, and (level, modality) -> row.
struct ModalityTable {
  std::vector<std::string> levels;
  std::map<std::pair<std::string, std::string>, const json*> cell;
};
ModalityTable modality_table(const json& rows, const std::string& task) {
  ModalityTable m;
  for (const auto& r : rows)
    if (r["section"] == "modality" && r["task"] == task) {
      const std::string lv = r["level"];
      if (std::find(m.levels.begin(), m.levels.end(), lv) == m.levels.end()) m.levels.push_back(lv);
      m.cell[{lv, r["modality"]}] = &r;
    }
  return m;
}

// ---- collecting results.json -----------------------------------------------------------------

// Who made the output of job `id`: ressa_version, cpu, threads, date (null where unknown: an
// output reused from a cache that kept no record, or a job that did not finish).
json run_fields(const JobGraph& g, const std::string& id) {
  const Job& j = g.at(id);
  json f = {{"ressa_version", nullptr}, {"cpu", nullptr}, {"threads", nullptr}, {"date", nullptr}};
  const auto rec = read_job_record(j);
  if (rec && rec->finished) {
    f = {{"ressa_version", rec->ressa_version}, {"cpu", rec->cpu},
         {"threads", rec->threads > 0 ? json(rec->threads) : json(nullptr)}, {"date", rec->date}};
  } else if (!rec && fs::exists(j.out)) {
    f["ressa_version"] = "unknown";
  }
  return f;
}

// Every job of the graph: kind and run_fields, or the path of a pre-existing artifact.
json collect_jobs(const Study& study, const RunSummary& run, const std::string& out_dir) {
  const auto& g = study.graph;
  json jobs = json::object();
  for (const auto& id : g.order()) {
    const Job& j = g.at(id);
    json e = {{"kind", j.kind}};
    if (j.record.empty()) {
      e.update({{"existing", true}, {"path", path_relative_to(j.out, out_dir)}});
    } else {
      e.update(run_fields(g, id));
      if (run.reused_older.count(id)) e["reused_from_older"] = true;
    }
    jobs[id] = e;
  }
  return jobs;
}

json collect_rows(const Study& study, const std::string& out_dir) {
  const auto& g = study.graph;
  json rows = json::array();
  for (const auto& r : study.rows) {
    json row = r.config;
    row["section"] = r.section;
    row["task"] = r.task;
    const json ev = read_json_or_null(g.out(r.eval_id));
    row["accuracy"] = ev.is_object() ? ev["accuracy"] : json(nullptr);
    row["families"] = ev.is_object() ? ev["families"] : json(nullptr);
    row["n"] = ev.is_object() ? ev["n"] : json(nullptr);
    row["sparsity"] = ev.is_object() ? ev["sparsity"] : json(nullptr);
    row["eval_job"] = r.eval_id;
    row.update(run_fields(g, r.eval_id));
    if (!r.prune_id.empty()) {
      const json pj = read_json_or_null(g.out(r.prune_id) + ".json");
      row["prune_job"] = r.prune_id;
      row["model_dir"] = path_relative_to(g.out(r.prune_id), out_dir);
      if (pj.is_object()) {
        row["prune"] = {{"seconds", pj.value("seconds", 0.0)}, {"peak_rss_mb", pj.value("peak_rss_mb", 0.0)}};
        row["prune"].update(run_fields(g, r.prune_id));
        // The layer-wise allocation study plots each layer's ratio.
        if (r.section == "owl" && pj.contains("layers")) {
          json layers = json::array();
          for (const auto& l : pj["layers"])
            layers.push_back({{"name", l.value("name", "")}, {"tower", l.value("tower", "")},
                              {"pattern", l.value("pattern", "")}, {"sparsity", l.value("sparsity", 0.0)}});
          row["layers"] = layers;
        }
      }
    }
    if (!r.repair_id.empty()) {
      const json rj = read_json_or_null(g.out(r.repair_id) + ".json");
      row["repair_job"] = r.repair_id;
      row["model_dir"] = path_relative_to(g.out(r.repair_id), out_dir);
      if (rj.is_object()) {
        row["repair"] = {{"seconds", rj.value("seconds", 0.0)},
                         {"final_loss", rj.value("final_loss", 0.0)},
                         {"steps", rj.value("steps", 0)},
                         {"pruned_positions", rj.value("pruned_positions", 0)},
                         {"filled_pruned_positions", rj.value("filled_pruned_positions", 0)}};
        row["repair"].update(run_fields(g, r.repair_id));
      }
    }
    rows.push_back(row);
  }
  return rows;
}

json collect_tasks(const Study& study, const std::string& out_dir) {
  const auto& g = study.graph;
  json tasks = json::object();
  for (const auto& [t, id] : study.dense_eval) {
    const std::string blind_id = study.dense_blind_eval.at(t);
    const json ev = read_json_or_null(g.out(id));
    const json bl = read_json_or_null(g.out(blind_id));
    json ti = study.task_info.at(t);
    ti["dense_dir"] = path_relative_to(ti.value("dense_dir", ""), out_dir);
    if (ti["dense"].contains("path")) ti["dense"]["path"] = path_relative_to(ti["dense"]["path"], out_dir);
    ti["dense_accuracy"] = ev.is_object() ? ev["accuracy"] : json(nullptr);
    ti["dense_families"] = ev.is_object() ? ev["families"] : json(nullptr);
    ti["dense_blind_accuracy"] = bl.is_object() ? bl["accuracy"] : json(nullptr);
    ti["test_n"] = ev.is_object() ? ev["n"] : json(nullptr);
    ti["dense_eval_job"] = id;
    ti["dense_blind_eval_job"] = blind_id;
    ti.update(run_fields(g, id));  // of the dense evaluation; the blind one is in "jobs"
    tasks[t] = ti;
  }
  return tasks;
}

// The numbers section 4 compares with the paper, from the rows.
json derive_findings(const json& rows, const json& tasks) {
  json findings = json::object();
  for (auto& [t, ti] : tasks.items()) {
    const auto pts = allocation_points(rows, t, 100);
    if (!pts.empty()) {
      double best = -1, at50 = std::nan("");
      std::string best_split;
      for (const json* r : pts) {
        const double a = acc_of(*r);
        if (!std::isnan(a) && a > best) best = a, best_split = (*r)["split"];
        if (std::abs((*r)["vision_target"].get<double>() - 0.5) < 1e-9) at50 = a;
      }
      const double gap = 100 * (best - at50);
      findings["allocation"][t] = {{"best_split", best_split}, {"best_accuracy", best}, {"accuracy_50_50", at50},
                                   {"gap_points", gap}, {"reproduces", !std::isnan(gap) && gap <= 2.0}};
    }
    const ModalityTable mt = modality_table(rows, t);
    for (const char* m : {"both", "language", "vision"}) {
      auto it = mt.cell.find({"70%", m});
      if (it != mt.cell.end() && !std::isnan(acc_of(*it->second))) findings["modality_70"][t][m] = acc_of(*it->second);
    }
    for (const auto& grp : repair_groups(rows, t)) {
      const MeanStd a = mean_std(grp.prune), b = mean_std(grp.ressa);
      findings["repair"][t][grp.method + " " + grp.level] = {{"dense", num(ti, "dense_accuracy")},
                                                              {"prune_mean", a.mean}, {"prune_std", a.std},
                                                              {"ressa_mean", b.mean}, {"ressa_std", b.std},
                                                              {"seeds", std::max(a.n, b.n)}};
    }
  }
  return findings;
}

// ---- rendering report.md and the plots -------------------------------------------------------

// Single-quotes `s` for /bin/sh.
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

// Writes plots/<name>.gp and runs gnuplot on it inside plots/ (the script names its data and
// output by file name only, so a shipped plots/ folder holds no machine paths). Returns the
// PNG's path, or "" when gnuplot is missing or fails (its messages are in plots/<name>.gp.log).
std::string run_gnuplot(const std::string& pdir, const std::string& name, const std::string& script) {
  write_file_atomic((fs::path(pdir) / (name + ".gp")).string(), script);
  const std::string cmd =
      "cd " + shell_quote(pdir) + " && gnuplot " + shell_quote(name + ".gp") + " > " + shell_quote(name + ".gp.log") + " 2>&1";
  if (std::system(cmd.c_str()) != 0) return "";
  return (fs::path(pdir) / (name + ".png")).string();
}

// One line plot per data block of plots/<name>.dat (blocks separated by two blank lines).
std::string line_plot_script(const std::string& name, const std::string& title, const std::string& xlabel,
                             const std::vector<std::string>& series) {
  std::ostringstream gp;
  gp << "set terminal pngcairo size 800,500\nset output '" << name << ".png'\n"
     << "set xlabel '" << xlabel << "'\nset ylabel 'test accuracy (%)'\n"
     << "set key outside bottom center horizontal\nset grid\nset title '" << title << "'\nplot ";
  for (size_t i = 0; i < series.size(); ++i)
    gp << (i ? ", " : "") << "'" << name << ".dat' index " << i << " with linespoints lw 2 title '" << series[i] << "'";
  gp << "\n";
  return gp.str();
}

class ReportWriter {
 public:
  ReportWriter(const json& results, const std::string& out_dir)
      : res_(results), out_dir_(out_dir), pdir_((fs::path(out_dir) / "plots").string()) {}

  std::vector<std::string> write() {
    fs::create_directories(pdir_);
    header();
    reused_from_older();
    tasks_table();
    allocation();
    modality();
    repair();
    layer_allocation();
    against_the_paper();
    failed_jobs();
    provenance();
    write_file_atomic((fs::path(out_dir_) / "report.md").string(), md_.str());
    return plots_;
  }

 private:
  const json& res_;
  std::string out_dir_, pdir_;
  std::ostringstream md_;
  std::vector<std::string> plots_;

  const json& rows() const { return res_["rows"]; }
  bool has_section(const std::string& section) const {
    for (const auto& r : rows())
      if (r["section"] == section) return true;
    return false;
  }
  const json& tasks() const { return res_["tasks"]; }
  const json& findings() const { return res_["findings"]; }
  const json& options() const { return res_["options"]; }
  // A path from results.json as the report shows it: relative to the report's folder.
  std::string shown_path(const std::string& p) const {
    return fs::path(p).is_absolute() ? path_relative_to(p, out_dir_) : p;
  }
  void plot(const std::string& name, const std::string& script) {
    const std::string png = run_gnuplot(pdir_, name, script);
    if (!png.empty()) plots_.push_back(png);
    else md_ << "(gnuplot is missing or failed, so plots/" << name << ".png was not made; see plots/" << name << ".gp.log)\n\n";
    md_ << "![" << name << "](plots/" << name << ".png)\n\n";
  }

  void header() {
    const json& run = res_["run"];
    const bool quick = res_.value("quick", false);
    md_ << "# ressa reproduce — " << (quick ? "quick study" : "full study") << "\n\n"
        << "Generated " << str_or(res_, "generated", "—") << " by `" << str_or(res_, "command", "") << "`";
    if (res_.contains("ressa_version")) md_ << " with ressa " << res_["ressa_version"].get<std::string>();
    md_ << " in " << std::round(num(run, "seconds") / 60) << " min (" << run.value("ran", 0) << " jobs run, "
        << run.value("cached", 0) << " reused from the cache, " << res_.value("failed", json::object()).size()
        << " failed). Every number below is in `results.json` with its full configuration and the ressa version, "
           "CPU, threads and date of the run that made it; each artifact is under `cache/` named by the hash of "
           "its configuration, with the log of the command that made it and a record of who made it "
           "(`<id>.job.json`).\n\n"
        << "Accuracy is exact match on the test split (greedy decoding), in %. Sparsity is measured on the "
           "written model: the fraction of zeros in the targeted Linear weights of each tower (embeddings, norms, "
           "projector and lm_head stay dense and are not counted).\n\n";
  }

  // Said plainly at the top: numbers that this ressa did not compute.
  void reused_from_older() {
    const json& older = res_["run"].value("reused_older", json::object());
    if (older.empty()) return;
    std::map<std::string, int> by_version;
    for (auto& [id, v] : older.items()) ++by_version[v.get<std::string>()];
    md_ << "**Reused from another ressa version.** " << older.size() << " of the jobs above were not run by this "
        << "ressa (" << str_or(res_, "ressa_version", "?") << ") but reused from the cache, made by ";
    size_t i = 0;
    for (const auto& [v, n] : by_version)
      md_ << (i++ ? ", " : "") << "ressa " << v << " (" << n << (n == 1 ? " job" : " jobs") << ")";
    md_ << ", because the study ran with `--reuse-cache-from-older`. Their numbers may differ from what this "
           "version computes; run again without that flag to recompute them. `results.json` lists them under "
           "`run.reused_older`.\n\n";
  }

  void tasks_table() {
    md_ << "| task | dense accuracy | blind (no image) | test examples | dense model |\n|---|---|---|---|---|\n";
    for (auto& [t, ti] : tasks().items())
      md_ << "| " << t << " | " << pct_or_dash(ti, "dense_accuracy") << " | " << pct_or_dash(ti, "dense_blind_accuracy")
          << " | " << (ti["test_n"].is_number() ? std::to_string(ti["test_n"].get<int64_t>()) : "—") << " | `"
          << shown_path(ti.value("dense_dir", "")) << "` |\n";
    md_ << "\nSettings: Wanda (per-output-row) unless stated, sequential calibration on "
        << options().value("calib_samples", 0) << " training examples; repair = SparseLoRA in vision, projector and "
        << "language (ranks 4/2/8, alpha 16), KD weight 0.1, T = 1, " << options().value("repair_steps", 0)
        << " steps of 32.\n\n";
  }

  void allocation() {
    if (!has_section("allocation")) return;
    md_ << "## 1. Allocation: how to split a sparsity budget between the towers\n\n"
        << "Wanda, unstructured, prune only (no repair). s_v + s_l fixed at 100% (average 50%) and 120% (average "
           "60%).\n\n";
    std::ostringstream dat;
    std::vector<std::string> series;
    for (auto& [t, ti] : tasks().items()) {
      for (int budget : {100, 120}) {
        const auto pts = allocation_points(rows(), t, budget);
        if (pts.empty()) continue;
        md_ << "**" << t << ", s_v + s_l = " << budget << "%**\n\n| s_v : s_l | accuracy | vision sparsity | "
            << "language sparsity |\n|---|---|---|---|\n";
        dat << "# " << t << " budget " << budget << "\n";
        for (const json* r : pts) {
          const double a = acc_of(*r);
          md_ << "| " << (*r)["split"].get<std::string>() << " | " << pct(a) << " | "
              << pct_or_dash((*r)["sparsity"], "vision") << " | " << pct_or_dash((*r)["sparsity"], "language") << " |\n";
          if (!std::isnan(a)) dat << 100 * (*r)["vision_target"].get<double>() << " " << 100 * a << "\n";
        }
        dat << "\n\n";
        series.push_back(t + ", s_v+s_l=" + std::to_string(budget) + "%");
        md_ << "\n";
      }
    }
    if (series.empty()) return;
    write_file_atomic((fs::path(pdir_) / "allocation.dat").string(), dat.str());
    plot("allocation", line_plot_script("allocation", "Allocation: Wanda, prune only, s_v + s_l fixed",
                                        "vision sparsity s_v (%)", series));
  }

  void modality() {
    if (!has_section("modality")) return;
    md_ << "## 2. Modality: prune both towers, only the language model, or only the vision tower\n\n"
        << "Wanda, prune only. The tower not pruned stays dense.\n\n";
    std::ostringstream dat;
    std::vector<std::string> series;
    for (auto& [t, ti] : tasks().items()) {
      const ModalityTable mt = modality_table(rows(), t);
      if (mt.levels.empty()) continue;
      md_ << "**" << t << "** (dense " << pct_or_dash(ti, "dense_accuracy")
          << ")\n\n| sparsity | both towers | language only | vision only |\n|---|---|---|---|\n";
      for (const auto& lv : mt.levels) {
        md_ << "| " << lv;
        for (const char* m : {"both", "language", "vision"}) {
          auto it = mt.cell.find({lv, m});
          md_ << " | " << pct(it == mt.cell.end() ? std::nan("") : acc_of(*it->second));
        }
        md_ << " |\n";
      }
      md_ << "\n";
      for (const std::string m : {"both", "language", "vision"}) {
        dat << "# " << t << " " << m << "\n0 " << 100 * num(ti, "dense_accuracy") << "\n";
        for (const auto& lv : mt.levels) {
          auto it = mt.cell.find({lv, m});
          if (it == mt.cell.end() || lv.find('%') == std::string::npos) continue;  // N:M rows only in the table
          const double a = acc_of(*it->second);
          if (!std::isnan(a)) dat << std::stod(lv) << " " << 100 * a << "\n";
        }
        dat << "\n\n";
        series.push_back(t + ", " + (m == "both" ? "both towers" : m + " only"));
      }
    }
    if (series.empty()) return;
    write_file_atomic((fs::path(pdir_) / "modality.dat").string(), dat.str());
    plot("modality", line_plot_script("modality", "Modality: Wanda, prune only",
                                      "unstructured sparsity of the pruned tower(s) (%)", series));
  }

  void repair() {
    if (!has_section("repair") && !has_section("ablation")) return;
    md_ << "## 3. Repair: prune only vs prune + RESSA\n\n"
        << "Mean ± sample standard deviation over seeds where more than one ran (the seed sets the calibration "
           "draw, the adapter initialisation and the batch order; the dense model and data stay fixed).\n\n";
    for (auto& [t, ti] : tasks().items()) {
      repair_table(t, ti);
      ablation_table(t);
    }
    repair_plot();
  }

  void repair_table(const std::string& t, const json& ti) {
    const auto groups = repair_groups(rows(), t);
    if (groups.empty()) return;
    md_ << "**" << t << "** (dense " << pct_or_dash(ti, "dense_accuracy")
        << ")\n\n| method | sparsity | dense | prune only | + RESSA | gain (points) | sparsity after prune / "
           "after repair (overall) | seeds |\n|---|---|---|---|---|---|---|---|\n";
    for (const auto& g : groups) {
      const MeanStd a = mean_std(g.prune), b = mean_std(g.ressa);
      const MeanStd s1 = mean_std(g.sp_prune), s2 = mean_std(g.sp_ressa);
      char gain[32] = "—";
      if (a.n && b.n) std::snprintf(gain, sizeof gain, "%+.1f", 100 * (b.mean - a.mean));
      char spb[64] = "—";
      if (s1.n && s2.n) std::snprintf(spb, sizeof spb, "%.2f / %.2f", 100 * s1.mean, 100 * s2.mean);
      md_ << "| " << g.method << " | " << g.level << " | " << pct_or_dash(ti, "dense_accuracy") << " | " << fmt(a)
          << " | " << fmt(b) << " | " << gain << " | " << spb << " | " << std::max(a.n, b.n) << " |\n";
    }
    md_ << "\n";
  }

  void ablation_table(const std::string& t) {
    std::vector<const json*> abl;
    for (const auto& r : rows())
      if (r["section"] == "ablation" && r["task"] == t) abl.push_back(&r);
    if (abl.empty()) return;
    md_ << "Ablations (Wanda; compare with the sparse-lora rows above at the same sparsity):\n\n"
        << "| sparsity | variant | accuracy | overall sparsity after repair | pruned positions filled by the "
           "merge |\n|---|---|---|---|---|\n";
    for (const json* r : abl) {
      std::string filled = "—";
      const json repair = r->value("repair", json());  // null (num gives NaN) if the job did not run
      const double n = num(repair, "pruned_positions"), f = num(repair, "filled_pruned_positions");
      if (!std::isnan(n) && !std::isnan(f)) {
        char b[64];
        std::snprintf(b, sizeof b, "%.0f of %.0f (%.1f%%)", f, n, n > 0 ? 100 * f / n : 0.0);
        filled = b;
      }
      md_ << "| " << (*r)["level"].get<std::string>() << " | " << (*r)["ablation"].get<std::string>() << " | "
          << pct(acc_of(*r)) << " | " << pct_or_dash((*r)["sparsity"], "overall") << " | " << filled << " |\n";
    }
    md_ << "\n";
  }

  // One panel per task; in each, one cluster of bars per method (named under the axis) with one
  // pair of bars (prune only, + RESSA) per sparsity level, error bars for the spread over seeds
  // when there are several, and a dashed line at the dense accuracy.
  void repair_plot() {
    std::ostringstream dat, panels;
    int block = 0, n_panels = 0;
    // Error bars (and so a second column per bar) only when some group has several seeds.
    bool seeds = false;
    for (auto& [t, ti] : tasks().items())
      for (const auto& g : repair_groups(rows(), t)) seeds |= g.prune.size() > 1 || g.ressa.size() > 1;
    const std::string prune_cols = seeds ? "2:3" : "2", ressa_cols = seeds ? "4:5" : "4";
    for (auto& [t, ti] : tasks().items()) {
      const auto groups = repair_groups(rows(), t);
      std::vector<std::string> methods;
      for (const auto& g : groups)
        if (std::find(methods.begin(), methods.end(), g.method) == methods.end()) methods.push_back(g.method);
      std::ostringstream plot_cmd;
      int plotted = 0;
      for (const auto& m : methods) {
        std::ostringstream rows_of_m;
        int n = 0;
        for (const auto& g : groups) {
          const MeanStd a = mean_std(g.prune), b = mean_std(g.ressa);
          if (g.method != m || !a.n || !b.n) continue;
          rows_of_m << "\"" << g.level << "\" " << 100 * a.mean << " " << 100 * a.std << " " << 100 * b.mean << " "
                    << 100 * b.std << "\n";
          ++n;
        }
        if (!n) continue;
        dat << "# " << t << " " << m << "\n" << rows_of_m.str() << "\n\n";
        const bool first = plotted++ == 0;
        plot_cmd << (first ? "" : ", ") << "newhistogram '" << m << "' offset 0,-0.3, 'repair.dat' index " << block
                 << " using " << prune_cols << ":xtic(1) lc rgb '#d95f02' " << (first ? "title 'prune only'" : "notitle")
                 << ", '' index " << block << " using " << ressa_cols << " lc rgb '#1b9e77' " << (first ? "title '+ RESSA'" : "notitle");
        ++block;
      }
      if (!plotted) continue;
      ++n_panels;
      const double dense = num(ti, "dense_accuracy");
      panels << "set title '" << t << (std::isnan(dense) ? "" : " (dense " + pct(dense) + "%)") << "'\n";
      if (!std::isnan(dense))
        panels << "set arrow 1 from graph 0, first " << 100 * dense << " to graph 1, first " << 100 * dense
               << " nohead dt 2 lw 1.5 lc rgb '#333333' front\n";
      else
        panels << "unset arrow 1\n";
      panels << "plot " << plot_cmd.str()
             << (std::isnan(dense) ? "" : ", keyentry with lines dt 2 lw 1.5 lc rgb '#333333' title 'dense'") << "\n";
    }
    if (!n_panels) return;
    write_file_atomic((fs::path(pdir_) / "repair.dat").string(), dat.str());
    std::ostringstream gp;
    gp << "set terminal pngcairo size 1000," << 60 + 380 * n_panels << " font ',11'\nset output 'repair.png'\n"
       << "set multiplot layout " << n_panels << ",1 title 'Repair: prune only vs prune + RESSA"
       << (seeds ? " (mean ± std over seeds)" : "") << "' font ',13'\n"
       << "set style data histogram\n"
       << (seeds ? "set style histogram errorbars gap 1 lw 1\n" : "set style histogram clustered gap 1\n")
       << "set style fill solid 0.85 border -1\nset boxwidth 0.9\n"
       << "set yrange [0:100]\nset ylabel 'test accuracy (%)'\nset grid ytics\nset xtics nomirror scale 0\n"
       << "set key outside right center vertical\nset bmargin 4\n"
       << panels.str() << "unset multiplot\n";
    plot("repair", gp.str());
  }

  // 4. Uniform vs OWL: one table per task (method x sparsity: prune only and + RESSA under each
  // allocation) and a plot of each layer's ratio under OWL.
  void layer_allocation() {
    if (!has_section("owl")) return;
    md_ << "## 4. Layer-wise allocation: uniform vs OWL\n\n"
        << "Unstructured, both towers at the same sparsity; OWL (M = 5, lambda = 0.08) gives blocks with more "
           "outlier activations less sparsity at the same mean per tower (docs/method.md §1). Prune only and "
           "prune + RESSA (sparse-lora, KD 0.1), seed " << options().value("seeds", json::array({0})).at(0)
        << ".\n\n";
    using Key = std::tuple<std::string, std::string, std::string, std::string>;  // method, level, allocation, stage
    for (auto& [t, ti] : tasks().items()) {
      std::map<Key, const json*> cell;
      std::vector<std::pair<std::string, std::string>> groups;  // (method, level) in order
      for (const auto& r : rows()) {
        if (r["section"] != "owl" || r["task"] != t) continue;
        const std::pair<std::string, std::string> g{r["method"], r["level"]};
        if (std::find(groups.begin(), groups.end(), g) == groups.end()) groups.push_back(g);
        cell[{g.first, g.second, r["allocation"], r["stage"]}] = &r;
      }
      if (groups.empty()) continue;
      md_ << "**" << t << "** (dense " << pct_or_dash(ti, "dense_accuracy")
          << ")\n\n| method | sparsity | uniform, prune only | OWL, prune only | uniform + RESSA | OWL + RESSA | "
             "overall sparsity (uniform / OWL) |\n|---|---|---|---|---|---|---|\n";
      for (const auto& group : groups) {
        const std::string& m = group.first;  // named, not structured bindings: lambdas capture them (C++17)
        const std::string& lv = group.second;
        auto acc = [&](const char* alloc, const char* stage) {
          auto it = cell.find({m, lv, alloc, stage});
          return pct(it == cell.end() ? std::nan("") : acc_of(*it->second));
        };
        auto sp = [&](const char* alloc) {
          auto it = cell.find({m, lv, alloc, "prune"});
          return it == cell.end() ? std::string("—") : pct_or_dash((*it->second)["sparsity"], "overall");
        };
        md_ << "| " << m << " | " << lv << " | " << acc("uniform", "prune") << " | " << acc("owl", "prune") << " | "
            << acc("uniform", "ressa") << " | " << acc("owl", "ressa") << " | " << sp("uniform") << " / " << sp("owl")
            << " |\n";
      }
      md_ << "\n";
    }
    owl_layers_plot();
  }

  // Each pruned layer's ratio under OWL (the Wanda prune at 70%, or the first OWL prune there is),
  // in pruning order (vision blocks, then language blocks), one series per task.
  void owl_layers_plot() {
    std::ostringstream dat, cmd;
    int series = 0;
    for (auto& [t, ti] : tasks().items()) {
      const json* pick = nullptr;
      for (const auto& r : rows()) {
        if (r["section"] != "owl" || r["task"] != t || r["allocation"] != "owl" || r["stage"] != "prune" ||
            !r.contains("layers"))
          continue;
        if (!pick || (r["method"] == "wanda" && r["level"] == "70%")) pick = &r;
      }
      if (!pick) continue;
      dat << "# " << t << " " << (*pick)["method"].get<std::string>() << " " << (*pick)["level"].get<std::string>() << "\n";
      int i = 0;
      for (const auto& l : (*pick)["layers"]) dat << i++ << " " << 100 * l.value("sparsity", 0.0) << "\n";
      dat << "\n\n";
      cmd << (series ? ", " : "") << "'owl_layers.dat' index " << series << " with linespoints lw 2 title '" << t << ", "
          << (*pick)["method"].get<std::string>() << " " << (*pick)["level"].get<std::string>() << " OWL'";
      ++series;
    }
    if (!series) return;
    write_file_atomic((fs::path(pdir_) / "owl_layers.dat").string(), dat.str());
    std::ostringstream gp;
    gp << "set terminal pngcairo size 900,450\nset output 'owl_layers.png'\n"
       << "set xlabel 'pruned layer (vision blocks, then language blocks)'\nset ylabel 'sparsity (%)'\n"
       << "set key outside bottom center horizontal\nset grid\n"
       << "set title 'OWL: per-layer sparsity (uniform allocation: the same ratio in every layer)'\nplot " << cmd.str()
       << "\n";
    plot("owl_layers", gp.str());
  }

  void against_the_paper() {
    if (!has_section("allocation") && !has_section("modality") && !has_section("repair")) return;
    md_ << "## 5. Against the paper\n\n"
        << "The reference (InstructBLIP, docs/method.md §4) reports: (a) with s_v + s_l = 100% the 50:50 split "
           "is best (45.0; 40:60 41.6, 60:40 40.2, 10:90 0.0); (b) at 70%, pruning both towers leaves 4.6, language "
           "only 31.2, vision only 16.7 (dense 49.5), i.e. the vision tower is the more fragile one at equal "
           "sparsity; (c) RESSA after Wanda gains +10.6 points at 2:4 (55.7 → 66.3) and turns 70% unstructured from "
           "unusable into usable (+47.6%).\n\n";
    const json& f = findings();
    for (auto& [t, ti] : tasks().items()) {
      md_ << "**" << t << "**\n\n";
      if (f.contains("allocation") && f["allocation"].contains(t)) paper_allocation(f["allocation"][t]);
      if (f.contains("modality_70") && f["modality_70"].contains(t)) paper_modality(f["modality_70"][t], dense_acc(res_, t));
      if (f.contains("repair") && f["repair"].contains(t)) paper_repair(f["repair"][t]);
      md_ << "\n";
    }
    md_ << "Why results can differ from the paper: the models here are small (about 0.8M prunable weights per "
           "tower) and trained from scratch on a synthetic task whose answers are single words from a small "
           "vocabulary, so (i) the vision tower's features are narrower than CLIP's and its redundancy differs "
           "from a 300M-parameter ViT's, (ii) accuracy is exact match over few answer classes, so a pruned model "
           "falls to the question-only baseline (the blind accuracy above) rather than to 0, and (iii) repair "
           "trains on the same distribution it is tested on, which favours large recoveries.\n\n";
  }
  void paper_allocation(const json& f) {
    const double gap = num(f, "gap_points");
    char gap_s[48] = "not measured";
    if (!std::isnan(gap)) std::snprintf(gap_s, sizeof gap_s, "%.1f points below it", gap);
    md_ << "- (a) Allocation: the best split is " << str_or(f, "best_split", "—") << " ("
        << pct(num(f, "best_accuracy")) << "); 50:50 is " << gap_s << ". "
        << (std::isnan(gap) ? "" : gap <= 2.0 ? "This reproduces the paper's finding (within 2 points)."
                                              : "This does not reproduce the paper's 50:50 optimum; see below.")
        << "\n";
  }
  void paper_modality(const json& f, double dense) {
    const double both = num(f, "both"), lang = num(f, "language"), vis = num(f, "vision");
    md_ << "- (b) Modality at 70%: both " << pct(both) << ", language only " << pct(lang) << ", vision only "
        << pct(vis) << " (dense " << pct(dense) << "). "
        << (both <= std::min(lang, vis) ? "Pruning both towers hurts most, as in the paper. " : "")
        << (lang > vis ? "As in the paper, the vision tower is the more fragile tower at equal sparsity."
                       : "Unlike the paper, the language model is the more fragile tower here at equal sparsity.")
        << "\n";
  }
  void paper_repair(const json& f) {
    for (const char* k : {"wanda 2:4", "wanda 70%", "sparsegpt 2:4"}) {
      if (!f.contains(k)) continue;
      const double d = num(f[k], "dense"), a = num(f[k], "prune_mean"), b = num(f[k], "ressa_mean");
      char line[256];
      std::snprintf(line, sizeof line,
                    "- (c) %s: prune only %.1f → + RESSA %.1f (%+.1f points; dense %.1f, gap to dense %.1f).\n", k,
                    100 * a, 100 * b, 100 * (b - a), 100 * d, 100 * (d - b));
      md_ << line;
    }
  }

  void failed_jobs() {
    const json& failed = res_.value("failed", json::object());
    if (failed.empty()) return;
    md_ << "## Failed jobs\n\n";
    for (auto& [id, why] : failed.items()) md_ << "- `" << id << "`: " << why.get<std::string>() << "\n";
    md_ << "\n";
  }

  // Which ressa versions, CPUs and thread counts made the numbers, from the jobs' records.
  void provenance() {
    if (!res_.contains("jobs")) return;
    struct Made {
      int jobs = 0;
      std::string first, last;
    };
    std::map<std::tuple<std::string, std::string, std::string>, Made> made;
    for (auto& [id, j] : res_["jobs"].items()) {
      if (j.value("existing", false)) continue;
      const auto key = std::make_tuple(str_or(j, "ressa_version", "—"), str_or(j, "cpu", "—"),
                                       j.contains("threads") && j["threads"].is_number() ? std::to_string(j["threads"].get<int>()) : "—");
      Made& m = made[key];
      ++m.jobs;
      const std::string d = str_or(j, "date", "");
      if (!d.empty() && (m.first.empty() || d < m.first)) m.first = d;
      if (!d.empty() && d > m.last) m.last = d;
    }
    if (made.empty()) return;
    md_ << "## Provenance\n\nThe runs behind the numbers (from each job's record in `cache/`; `results.json` gives "
           "them per row):\n\n| ressa | CPU | threads | jobs | run between |\n|---|---|---|---|---|\n";
    for (const auto& [key, m] : made)
      md_ << "| " << std::get<0>(key) << " | " << std::get<1>(key) << " | " << std::get<2>(key) << " | " << m.jobs
          << " | " << (m.first.empty() ? "—" : m.first + " – " + m.last) << " |\n";
    md_ << "\n";
  }
};

}  // namespace

json collect_results(const Study& study, const ReportInfo& info, const std::string& out_dir) {
  const auto& o = info.options;
  json failed = json::object();
  for (const auto& [id, why] : info.run.failed) {
    std::string shown = why;  // the log's path as the report names it
    const std::string log = job_log_path(study.graph.at(id));
    if (auto pos = shown.find(log); pos != std::string::npos) shown.replace(pos, log.size(), path_relative_to(log, out_dir));
    failed[id] = shown;
  }
  json reused_older = json::object();
  for (const auto& [id, v] : info.run.reused_older) reused_older[id] = v;
  json tasks = collect_tasks(study, out_dir);
  json rows = collect_rows(study, out_dir);
  json findings = derive_findings(rows, tasks);
  // The command as run from the study folder, so an absolute --out names no machine path.
  std::string command = info.command;
  if (fs::path(out_dir).is_absolute())
    for (auto pos = command.find(out_dir); pos != std::string::npos; pos = command.find(out_dir, pos + 1))
      command.replace(pos, out_dir.size(), ".");
  return {{"ressa_version", info.run.version.empty() ? std::string(version_string()) : info.run.version},
          {"cpu", cpu_model_name()},
          {"quick", o.quick},
          {"command", command},
          {"generated", utc_now_iso8601()},
          {"options",
           {{"tasks", o.tasks}, {"seeds", o.seeds}, {"threads", o.threads},
            {"repair_steps", o.repair_steps > 0 ? o.repair_steps : (o.quick ? 200 : 400)},
            {"calib_samples", o.calib_samples}, {"eval_limit", o.eval_limit}, {"preset", o.preset},
            {"sections", o.sections}}},
          {"run", {{"seconds", info.run.seconds}, {"jobs", info.run.total}, {"ran", info.run.ran},
                   {"cached", info.run.cached}, {"reused_older", reused_older}}},
          {"tasks", std::move(tasks)},
          {"rows", std::move(rows)},
          {"jobs", collect_jobs(study, info.run, out_dir)},
          {"findings", std::move(findings)},
          {"failed", failed},
          {"plots", json::array()}};
}

std::vector<std::string> render_report(const json& results, const std::string& out_dir) {
  for (const char* key : {"run", "options", "tasks", "rows", "findings"})
    RESSA_CHECK(results.is_object() && results.contains(key), "[render_report] results.json has no '", key, "'");
  return ReportWriter(results, out_dir).write();
}

std::vector<std::string> write_report(const Study& study, const ReportInfo& info, const std::string& out_dir) {
  fs::create_directories(out_dir);
  json results = collect_results(study, info, out_dir);
  const auto plots = render_report(results, out_dir);
  for (const auto& p : plots) results["plots"].push_back(path_relative_to(p, out_dir));
  write_file_atomic((fs::path(out_dir) / "results.json").string(), results.dump(2) + "\n");
  return plots;
}

}  // namespace ressa::study
