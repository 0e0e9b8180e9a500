// libFuzzer harness for the chat template parser and renderer (io/jinja.h, io/chat_template.h).
// Build and run: scripts/fuzz.sh (seed corpus: tests/fuzz/corpus/chat_template/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::chat_template(data, size);
  return 0;
}
