// CPU model name from /proc/cpuinfo (see cpu_info.h).
#include "ressa/core/cpu_info.h"

#include <fstream>
#include <sstream>

namespace ressa {
namespace {

std::string trim_collapse(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool space = c == ' ' || c == '\t' || c == '\r';
    if (space && (out.empty() || out.back() == ' ')) continue;
    out += space ? ' ' : c;
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  return out;
}

}  // namespace

std::string cpu_model_name_from(const std::string& cpuinfo_text) {
  std::istringstream in(cpuinfo_text);
  std::string line, processor, hardware, implementer, part;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim_collapse(line.substr(0, colon));
    const std::string value = trim_collapse(line.substr(colon + 1));
    if (value.empty()) continue;
    if (key == "model name") return value;
    // "Processor : 0" on some kernels is an index, not a name.
    if ((key == "Processor" || key == "cpu model") && processor.empty() &&
        value.find_first_not_of("0123456789") != std::string::npos)
      processor = value;
    if (key == "Hardware" && hardware.empty()) hardware = value;
    if (key == "CPU implementer" && implementer.empty()) implementer = value;
    if (key == "CPU part" && part.empty()) part = value;
  }
  if (!processor.empty()) return processor;
  // aarch64 kernels give only the implementer and part numbers (e.g. 0x41 / 0xd0c).
  std::string ids;
  if (!implementer.empty()) ids = "CPU implementer " + implementer;
  if (!part.empty()) ids += (ids.empty() ? "" : ", ") + std::string("CPU part ") + part;
  if (!hardware.empty()) return ids.empty() ? hardware : hardware + " (" + ids + ")";
  return ids;
}

std::string cpu_model_name() {
  std::ifstream in("/proc/cpuinfo");
  if (!in) return "unknown";
  std::ostringstream text;
  text << in.rdbuf();
  const std::string name = cpu_model_name_from(text.str());
  return name.empty() ? "unknown" : name;
}

}  // namespace ressa
