// libFuzzer harness for PNG/JPEG decoding (data/image: decode_image; stb_image for PNG, libjpeg-turbo for JPEG) plus the resize the loader applies.
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/image/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::image(data, size);
  return 0;
}
