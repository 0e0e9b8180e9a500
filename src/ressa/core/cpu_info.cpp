// CPU model name from /proc/cpuinfo and instruction-set features from cpuid (see cpu_info.h).
#include "ressa/core/cpu_info.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

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

namespace {

CpuFeatures detect_cpu_features() {
  CpuFeatures f;
#if defined(__x86_64__)
  // __builtin_cpu_supports also checks that the OS saves the AVX / AVX-512 registers (XGETBV).
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  f.popcnt = __builtin_cpu_supports("popcnt");
  f.bmi = __builtin_cpu_supports("bmi");
  f.bmi2 = __builtin_cpu_supports("bmi2");
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512dq = __builtin_cpu_supports("avx512dq");
  f.avx512cd = __builtin_cpu_supports("avx512cd");
  f.avx512vbmi2 = __builtin_cpu_supports("avx512vbmi2");
  // cpuid leaf 1, ECX bit 29: clang's __builtin_cpu_supports does not know "f16c". This does not
  // check the OS side (YMM state); every user of f16c also requires avx2, which does.
  unsigned a = 0, b = 0, c = 0, d = 0;
  f.f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
#endif
  return f;
}

}  // namespace

const CpuFeatures& cpu_features() {
  static const CpuFeatures features = detect_cpu_features();
  return features;
}

}  // namespace ressa
