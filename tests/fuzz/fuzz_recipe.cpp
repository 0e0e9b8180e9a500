// libFuzzer harness for the llm-compressor recipe reader and writer (io/recipe.h:
// parse_pruning_recipe, to_yaml). Build and run: scripts/fuzz.sh (seed corpus:
// tests/fuzz/corpus/recipe/).
#include "fuzz_targets.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ressa::fuzz::recipe(data, size);
  return 0;
}
