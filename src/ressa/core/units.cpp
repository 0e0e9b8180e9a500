// Size parsing for memory flags (see units.h).
#include "ressa/core/units.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "ressa/core/error.h"

namespace ressa {

int64_t parse_byte_size(const std::string& text, const std::string& flag) {
  const char* s = text.c_str();
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  RESSA_CHECK_ARG(end != s && !text.empty() && std::isdigit(static_cast<unsigned char>(text[0])), flag, " '", text,
                  "' is not a size (expected a number with an optional K, M, G or T, e.g. 6G)");
  std::string unit(end);
  for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  struct Unit {
    const char* name;
    double scale;
  };
  static constexpr Unit kUnits[] = {{"", 1.0},         {"B", 1.0},          {"K", 0x1p10},  {"KB", 0x1p10},
                                    {"KIB", 0x1p10},   {"M", 0x1p20},       {"MB", 0x1p20}, {"MIB", 0x1p20},
                                    {"G", 0x1p30},     {"GB", 0x1p30},      {"GIB", 0x1p30}, {"T", 0x1p40},
                                    {"TB", 0x1p40},    {"TIB", 0x1p40}};
  double scale = 0;
  for (const auto& u : kUnits)
    if (unit == u.name) scale = u.scale;
  RESSA_CHECK_ARG(scale > 0, flag, " '", text, "': unknown unit '", std::string(end),
                  "' (expected K, M, G or T, optionally followed by B or iB)");
  const double bytes = v * scale;
  RESSA_CHECK_ARG(std::isfinite(bytes) && bytes >= 0 && bytes <= 0x1p62, flag, " '", text, "' is out of range");
  return static_cast<int64_t>(std::llround(bytes));
}

}  // namespace ressa
