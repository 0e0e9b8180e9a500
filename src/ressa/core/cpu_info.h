// What the CPU is: its model name, as results record it beside each number (which machine made
// it), and the instruction-set features the code picks its paths from (the OpenBLAS core type in
// core/runtime.h, the sparse kernels' ISA in sparse/kernels.h). The one place ressa asks the CPU
// what it supports; the choices are pure functions of a CpuFeatures, so tests feed them made-up
// ones. Torch-free.
#pragma once
#include <string>

namespace ressa {

// x86 instruction-set extensions the CPU and the OS (saved register state) support; all false
// when ressa is built for another architecture than x86-64.
struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool popcnt = false;
  bool bmi = false;  // BMI1
  bool bmi2 = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512cd = false;
  bool avx512vbmi2 = false;
};

// This CPU's features, detected on the first call (thread-safe) and kept for the process.
const CpuFeatures& cpu_features();

// The model name in the text of a /proc/cpuinfo: the first "model name" line (x86), else the
// first "Processor" or "cpu model" line (some ARM and MIPS kernels), else "Hardware" and the
// "CPU implementer" / "CPU part" numbers (aarch64); "" when none of them is there. Whitespace runs inside
// the name are collapsed to one space.
std::string cpu_model_name_from(const std::string& cpuinfo_text);

// cpu_model_name_from(/proc/cpuinfo), or "unknown" when that file cannot be read or names no model.
std::string cpu_model_name();

}  // namespace ressa
