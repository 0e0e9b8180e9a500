// libFuzzer harness for the IDX reader (data/idx: parse_idx_images / parse_idx_labels, raw or gzip).
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/idx/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::idx(data, size);
  return 0;
}
