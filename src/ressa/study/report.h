// Reads a finished study back (the JSON each job wrote) and writes DIR/results.json (every number
// with its full configuration), DIR/report.md (tables, the comparison with the paper) and PNG
// plots made by gnuplot (DIR/plots/*.png; the report says so when gnuplot is missing). Torch-free.
#pragma once
#include <string>

#include "ressa/study/runner.h"
#include "ressa/study/studies.h"

namespace ressa::study {

struct ReportInfo {
  StudyOptions options;
  RunSummary run;
  std::string command;  // the reproduce command line, for the report
};

// Returns the paths of the plots written.
std::vector<std::string> write_report(const Study& study, const ReportInfo& info, const std::string& out_dir);

}  // namespace ressa::study
