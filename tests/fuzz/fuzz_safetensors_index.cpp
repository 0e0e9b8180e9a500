// libFuzzer harness for the model.safetensors.index.json parser (io/safetensors: parse_safetensors_index).
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/safetensors_index/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::safetensors_index(data, size);
  return 0;
}
