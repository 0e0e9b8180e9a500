// libFuzzer harness for the safetensors header parser (io/safetensors: parse_safetensors_header), fed whole files.
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/safetensors/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::safetensors(data, size);
  return 0;
}
