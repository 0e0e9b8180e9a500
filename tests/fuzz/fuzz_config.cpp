// libFuzzer harness for the config.json parser (io/config: parse_config) and its round trip.
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/config/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::config(data, size);
  return 0;
}
