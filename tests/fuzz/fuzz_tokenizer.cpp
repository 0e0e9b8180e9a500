// libFuzzer harness for the tokenizer.json parser (io/tokenizer: Tokenizer::parse) plus encode/decode.
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/tokenizer/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::tokenizer(data, size);
  return 0;
}
