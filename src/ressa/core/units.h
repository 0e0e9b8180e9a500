// Sizes given on the command line ("6G", "512MiB", "1.5GB", "1073741824").
#pragma once
#include <cstdint>
#include <string>

namespace ressa {

// Bytes of a size: a number (fractions allowed) with an optional unit K, M, G or T, each with an
// optional "B" or "iB" (all powers of 1024, as free(1) and /proc report memory) or B alone.
// Throws std::invalid_argument naming `flag` on anything else, a negative size or one past 2^62.
int64_t parse_byte_size(const std::string& text, const std::string& flag);

}  // namespace ressa
