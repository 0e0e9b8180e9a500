// libFuzzer harness for the dataset JSONL parser (data/dataset: parse_jsonl).
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/dataset/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::dataset(data, size);
  return 0;
}
