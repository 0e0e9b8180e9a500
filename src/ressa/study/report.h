// Reads a finished study back (the JSON each job wrote, and each job's record of the ressa that
// made it) and writes DIR/results.json (every number with its full configuration and its
// provenance: ressa version, CPU, threads, date), DIR/report.md (tables, the comparison with the
// paper) and PNG plots made by gnuplot (DIR/plots/*.png; the report says so when gnuplot is
// missing). The report is a function of results.json alone, so it can be rendered again from a
// results.json without the cache. Paths in both files are relative to DIR. Torch-free.
#pragma once
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ressa/study/runner.h"
#include "ressa/study/studies.h"

namespace ressa::study {

struct ReportInfo {
  StudyOptions options;
  RunSummary run;
  std::string command;  // the reproduce command line, for the report
};

// The contents of results.json for `study` after `info.run`, with paths relative to `out_dir`
// (its "plots" list is empty; write_report fills it). Reads the jobs' outputs and records.
nlohmann::json collect_results(const Study& study, const ReportInfo& info, const std::string& out_dir);

// Writes out_dir/report.md and out_dir/plots/ from `results` (a results.json). Returns the paths
// of the plots written.
std::vector<std::string> render_report(const nlohmann::json& results, const std::string& out_dir);

// collect_results, render_report, then out_dir/results.json. Returns the paths of the plots written.
std::vector<std::string> write_report(const Study& study, const ReportInfo& info, const std::string& out_dir);

// `path` as the report names it: relative to `dir` (std::filesystem::relative), or its file name
// when no relative path exists. "" stays "".
std::string path_relative_to(const std::string& path, const std::string& dir);

}  // namespace ressa::study
