// Tests for ressa::io file_pages: reading a mapped safetensors file makes its pages resident
// (RssFile of /proc/self/status) and release_file_pages / release_all_file_pages take them back
// while the data stays readable; anonymous memory is never released; SpillFile blocks read back
// the bytes written and do not show up as resident once released.
#include "ressa/io/file_pages.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <vector>

#include "ressa/io/safetensors.h"

namespace {

using namespace ressa::io;
namespace fs = std::filesystem;

// RssFile of this process in bytes (file pages mapped and resident).
uint64_t rss_file() {
  std::ifstream f("/proc/self/status");
  std::string key;
  uint64_t kb = 0;
  while (f >> key) {
    if (key == "RssFile:") {
      f >> kb;
      return kb * 1024;
    }
    f.ignore(1 << 12, '\n');
  }
  ADD_FAILURE() << "no RssFile line in /proc/self/status";
  return 0;
}

uint64_t sum_bytes(const uint8_t* p, uint64_t n) {
  uint64_t s = 0;
  for (uint64_t i = 0; i < n; i += 64) s += p[i];  // touches every cache line, so every page
  return s;
}

class FilePages : public ::testing::Test {
 protected:
  void SetUp() override {
    dir = fs::temp_directory_path() / ("ressa_test_file_pages_" + std::to_string(getpid()));
    fs::create_directories(dir);
  }
  void TearDown() override { fs::remove_all(dir); }
  fs::path dir;
};

constexpr uint64_t kBytes = 48ull << 20;  // 48 MiB: far above the noise of RssFile

TEST_F(FilePages, ReleasedMappedPagesLeaveRssAndStayReadable) {
  std::vector<uint8_t> data(kBytes);
  for (uint64_t i = 0; i < kBytes; ++i) data[i] = static_cast<uint8_t>(i * 7 + 3);
  const std::string path = (dir / "big.safetensors").string();
  write_safetensors(path, {{"w", DType::U8, {static_cast<int64_t>(kBytes)}, data.data()}});
  const uint64_t expect = sum_bytes(data.data(), kBytes);

  auto f = SafetensorsFile::open(path);
  const uint8_t* p = f.data(f.at("w"));
  const uint64_t before = rss_file();
  EXPECT_EQ(sum_bytes(p, kBytes), expect);
  const uint64_t read = rss_file();
  EXPECT_GT(read, before + kBytes * 9 / 10) << "reading the mapping should make it resident";

  EXPECT_TRUE(release_file_pages(p, kBytes));
  const uint64_t released = rss_file();
  EXPECT_LT(released, read - kBytes * 9 / 10);
  EXPECT_EQ(sum_bytes(p, kBytes), expect);  // faulted back in from the file
  release_all_file_pages();
  EXPECT_LT(rss_file(), read - kBytes * 9 / 10);

  // Ranges outside a registered mapping are left alone: anonymous memory keeps its contents.
  EXPECT_FALSE(release_file_pages(data.data(), kBytes));
  EXPECT_EQ(sum_bytes(data.data(), kBytes), expect);
  EXPECT_FALSE(release_file_pages(p, 0));
  EXPECT_FALSE(release_file_pages(p + 16, f.data_size() + 4096));  // runs past the mapping
}

TEST_F(FilePages, SpillFileBlocksReadBackAndRelease) {
  const uint64_t before = rss_file();
  std::vector<const uint8_t*> blocks;
  std::vector<std::vector<uint8_t>> want;
  {
    SpillFile spill(dir.string());
    for (uint64_t k = 0; k < 3; ++k) {
      want.emplace_back(kBytes / 3 + k * 1001);  // odd sizes: the next block starts on a page
      std::iota(want.back().begin(), want.back().end(), static_cast<uint8_t>(k));
      blocks.push_back(static_cast<const uint8_t*>(spill.append(want.back().data(), want.back().size())));
    }
    EXPECT_NE(spill.append(nullptr, 0), nullptr);
    for (uint64_t k = 0; k < 3; ++k) {
      ASSERT_EQ(reinterpret_cast<uintptr_t>(blocks[k]) % 4096, 0u);
      EXPECT_EQ(std::memcmp(blocks[k], want[k].data(), want[k].size()), 0) << k;
    }
    EXPECT_GT(rss_file(), before + kBytes * 9 / 10);
    release_all_file_pages();
    EXPECT_LT(rss_file(), before + kBytes / 10);
    EXPECT_EQ(std::memcmp(blocks[1], want[1].data(), want[1].size()), 0);
    EXPECT_TRUE(fs::is_empty(dir)) << "the scratch file has no name";
  }
  EXPECT_FALSE(release_file_pages(blocks[0], 16)) << "unmapped with the SpillFile";
  EXPECT_THROW(SpillFile((dir / "missing").string()), std::runtime_error);
}

}  // namespace
