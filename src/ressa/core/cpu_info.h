// The CPU's model name, as results record it beside each number (which machine made it).
// Read from /proc/cpuinfo; torch-free.
#pragma once
#include <string>

namespace ressa {

// The model name in the text of a /proc/cpuinfo: the first "model name" line (x86), else the
// first "Processor" or "cpu model" line (some ARM and MIPS kernels), else "Hardware" and the
// "CPU implementer" / "CPU part" numbers (aarch64); "" when none of them is there. Whitespace runs inside
// the name are collapsed to one space.
std::string cpu_model_name_from(const std::string& cpuinfo_text);

// cpu_model_name_from(/proc/cpuinfo), or "unknown" when that file cannot be read or names no model.
std::string cpu_model_name();

}  // namespace ressa
