// Temporary directories for tests. TempDir: a fresh directory for one test, removed when it
// goes out of scope: <tmp>/ressa_<pid>_<test name><suffix> (the pid and test name keep parallel
// CTest runs apart).
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

namespace ressa::test {

struct TempDir {
  std::filesystem::path path;
  explicit TempDir(const std::string& suffix = "") {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path = std::filesystem::temp_directory_path() /
           ("ressa_" + std::to_string(::getpid()) + "_" + (info ? info->name() : "none") + suffix);
    std::filesystem::remove_all(path);
    std::filesystem::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::filesystem::path operator/(const std::string& name) const { return path / name; }
  std::string str() const { return path.string(); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

// One directory per test process, <tmp>/ressa_<tag>_<pid>, created on first use and removed
// when the process exits normally (CTest runs each test case in its own process).
inline const std::filesystem::path& process_temp_dir(const std::string& tag) {
  struct Root {
    std::filesystem::path path;
    ~Root() {
      std::error_code ec;
      std::filesystem::remove_all(path, ec);
    }
  };
  static const Root root = [&] {
    Root r{std::filesystem::temp_directory_path() / ("ressa_" + tag + "_" + std::to_string(::getpid()))};
    std::filesystem::remove_all(r.path);
    std::filesystem::create_directories(r.path);
    return r;
  }();
  return root.path;
}

}  // namespace ressa::test
