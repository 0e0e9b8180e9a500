// Replays every input the fuzzers once failed on (tests/fuzz/regressions/<name>/*) through the
// same fuzz targets (tests/fuzz/fuzz_targets.h), in the normal and the sanitizer build: each must
// now parse or throw std::runtime_error (no other exception, crash or sanitizer report). The seed
// corpus (tests/fuzz/corpus/<name>/*) holds valid files: each must parse without any exception.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <sstream>

#include "fuzz_targets.h"

namespace fs = std::filesystem;

namespace {

using Target = void (*)(const uint8_t*, size_t);
struct Entry {
  Target fuzz;   // the libFuzzer target: swallows std::runtime_error
  Target parse;  // the same work, throwing on bad input
};

const std::map<std::string, Entry>& targets() {
  namespace f = ressa::fuzz;
  static const std::map<std::string, Entry> t = {
      {"safetensors", {f::safetensors, f::parse_safetensors}},
      {"safetensors_index", {f::safetensors_index, f::parse_safetensors_index}},
      {"config", {f::config, f::parse_config}},
      {"tokenizer", {f::tokenizer, f::parse_tokenizer}},
      {"dataset", {f::dataset, f::parse_dataset}},
      {"conversations", {f::conversations, f::parse_conversations}},
      {"image", {f::image, f::parse_image}},
      {"idx", {f::idx, f::parse_idx}},
      {"preprocessor_config", {f::preprocessor_config, f::parse_preprocessor_config}},
      {"chat_template", {f::chat_template, f::parse_chat_template}},
      {"recipe", {f::recipe, f::parse_recipe}}};
  return t;
}

const uint8_t* bytes_of(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Files under tests/fuzz/<kind>/<name>/ (README files excluded).
std::vector<fs::path> inputs(const std::string& kind, const std::string& name) {
  std::vector<fs::path> out;
  const fs::path dir = fs::path(RESSA_SOURCE_DIR) / "tests/fuzz" / kind / name;
  if (!fs::is_directory(dir)) return out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename() != "README.md") out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

TEST(FuzzRegressions, EveryHarnessHasATargetAndSeeds) {
  for (const auto& e : fs::directory_iterator(fs::path(RESSA_SOURCE_DIR) / "tests/fuzz")) {
    const std::string f = e.path().filename().string();
    if (f.rfind("fuzz_", 0) != 0 || e.path().extension() != ".cpp") continue;
    const std::string name = e.path().stem().string().substr(5);
    EXPECT_EQ(targets().count(name), 1u) << f << " has no entry in this test's table";
    EXPECT_FALSE(inputs("corpus", name).empty()) << "no seed corpus for " << f;
  }
}

TEST(FuzzRegressions, SeedCorpusFilesAreValid) {
  for (const auto& [name, entry] : targets()) {
    for (const fs::path& p : inputs("corpus", name)) {
      const std::string bytes = read_bytes(p);
      EXPECT_NO_THROW(entry.parse(bytes_of(bytes), bytes.size())) << p;
    }
  }
}

TEST(FuzzRegressions, CrashInputsNowParseOrThrowRuntimeError) {
  size_t replayed = 0;
  for (const auto& [name, entry] : targets()) {
    for (const fs::path& p : inputs("regressions", name)) {
      const std::string bytes = read_bytes(p);
      EXPECT_NO_THROW(entry.fuzz(bytes_of(bytes), bytes.size())) << p;
      ++replayed;
    }
  }
  std::cout << "replayed " << replayed << " regression inputs\n";
}
