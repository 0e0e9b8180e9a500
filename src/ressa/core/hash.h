// 64-bit FNV-1a, the one hash behind ressa's cache keys and model fingerprints (cheap and stable
// across platforms; not a checksum against adversaries).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

namespace ressa {

struct Fnv1a {
  uint64_t h = 1469598103934665603ull;
  void add(unsigned char c) { h = (h ^ c) * 1099511628211ull; }
  void add(const void* data, size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    for (size_t i = 0; i < n; ++i) add(p[i]);
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  // 16 lowercase hex digits.
  std::string hex() const {
    char buf[17];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
    return buf;
  }
};

}  // namespace ressa
