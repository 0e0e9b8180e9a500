// libFuzzer harness for the LLaVA conversation file parser (data/conversation.h:
// parse_llava_conversations). Build and run: scripts/fuzz.sh (seed corpus:
// tests/fuzz/corpus/conversations/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::conversations(data, size);
  return 0;
}
