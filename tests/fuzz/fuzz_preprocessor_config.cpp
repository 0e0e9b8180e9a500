// libFuzzer harness for the preprocessor_config.json parser (data/image_processor:
// parse_image_processor_config) and the ImageProcessor it configures.
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/preprocessor_config/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::preprocessor_config(data, size);
  return 0;
}
