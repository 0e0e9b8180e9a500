// core/atomic_file: atomic writes under failure (a full disk, simulated with RLIMIT_FSIZE; a path
// under a regular file, which fails even for root), the previous file surviving, no temp files
// left behind, and check_output_path's output-vs-input and writability rules.
#include "ressa/core/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.h"

namespace fs = std::filesystem;
using ressa::check_output_path;
using ressa::OutputKind;

namespace {

using ressa::test::TempDir;

size_t entries(const fs::path& dir) {
  size_t n = 0;
  for (auto it = fs::directory_iterator(dir); it != fs::directory_iterator(); ++it) ++n;
  return n;
}

// The message of the std::invalid_argument `f` throws ("" if it throws nothing).
template <typename F>
std::string arg_error(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(AtomicFile, DiskFullKeepsThePreviousFileAndLeavesNoTemp) {
  TempDir d;
  const std::string path = d / "model.bin";
  ressa::write_file_atomic(path, "previous");
  // RLIMIT_FSIZE makes write() fail with EFBIG once the file would pass 4 KiB, as a full disk
  // (ENOSPC) does midway; SIGXFSZ is ignored so the write reports the error instead of killing us.
  struct rlimit old;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  std::string message;
  try {
    ressa::write_file_atomic(path, std::string(64 * 1024, 'x'));
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_NE(message.find("write failed"), std::string::npos) << message;
  EXPECT_EQ(ressa::read_file(path), "previous");
  EXPECT_EQ(entries(d.path), 1u) << "a temp file was left behind";
}

TEST(AtomicFile, UnwritablePathNamesThePath) {
  TempDir d;
  ressa::write_file_atomic(d / "plain", "x");
  const std::string bad = d / "plain/out.json";  // under a regular file: ENOTDIR, even for root
  try {
    ressa::write_file_atomic(bad, "{}");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("cannot create"), std::string::npos) << e.what();
  }
  try {
    ressa::begin_output_dir(d / "plain/model");
    FAIL() << "expected an error";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("plain/model.partial"), std::string::npos) << e.what();
  }
}

TEST(OutputDir, WriteCommitsOrLeavesNothing) {
  TempDir d;
  const std::string out = d / "model";
  ressa::write_output_dir(out, [](const std::string& staging) { ressa::write_file_atomic(staging + "/a.txt", "v1"); });
  EXPECT_EQ(ressa::read_file(out + "/a.txt"), "v1");
  EXPECT_FALSE(fs::exists(out + ".partial"));
  // A failing fill leaves the previous output as it was and no staging directory.
  EXPECT_THROW(ressa::write_output_dir(out,
                                       [](const std::string& staging) {
                                         ressa::write_file_atomic(staging + "/a.txt", "v2");
                                         throw std::runtime_error("fill failed");
                                       }),
               std::runtime_error);
  EXPECT_EQ(ressa::read_file(out + "/a.txt"), "v1");
  EXPECT_FALSE(fs::exists(out + ".partial"));
  // A successful one replaces it whole (no file of the old output survives).
  ressa::write_output_dir(out, [](const std::string& staging) { ressa::write_file_atomic(staging + "/b.txt", "v3"); });
  EXPECT_FALSE(fs::exists(out + "/a.txt"));
  EXPECT_EQ(ressa::read_file(out + "/b.txt"), "v3");
  EXPECT_FALSE(fs::exists(out + ".old"));
}

TEST(CheckOutputPath, RejectsOutputsOverlappingInputs) {
  TempDir d;
  fs::create_directories(d.path / "data/images");
  fs::create_directories(d.path / "model");
  const std::vector<std::pair<std::string, std::string>> in = {{"--data", d / "data"}, {"--model", d / "model"}};
  auto msg = [&](const std::string& out, OutputKind k = OutputKind::Directory) {
    return arg_error([&] { check_output_path("--out", out, k, in); });
  };
  EXPECT_NE(msg(d / "data").find("is the input --data"), std::string::npos) << msg(d / "data");
  EXPECT_NE(msg(d / "model/").find("is the input --model"), std::string::npos);
  EXPECT_NE(msg(d / "data/../model").find("--model"), std::string::npos) << "\"..\" is resolved";
  EXPECT_NE(msg(d.path.string()).find("contains the input"), std::string::npos);
  EXPECT_NE(msg(d / "data/images").find("is inside the input --data"), std::string::npos);
  EXPECT_NE(msg(d / "model/eval.json", OutputKind::File).find("--model"), std::string::npos);
  // <out>.ckpt would be removed by repair: an input there is protected too.
  fs::create_directories(d.path / "run.ckpt");
  const std::string ckpt = arg_error(
      [&] { check_output_path("--out", d / "run", OutputKind::Directory, {{"--data", d / "run.ckpt"}}); });
  EXPECT_NE(ckpt.find("run.ckpt"), std::string::npos) << ckpt;
  // Siblings are fine, and so is an empty (absent) input.
  EXPECT_EQ(msg(d / "pruned"), "");
  EXPECT_EQ(msg(d / "runs/new/pruned"), "") << "missing parents are created later";
  EXPECT_EQ(arg_error([&] { check_output_path("--json", d / "r.json", OutputKind::File, {{"--config", ""}}); }), "");
}

TEST(CheckOutputPath, RejectsUncreatablePathsAndWrongKinds) {
  TempDir d;
  ressa::write_file_atomic(d / "plain", "x");
  fs::create_directories(d.path / "dir");
  auto msg = [&](const std::string& out, OutputKind k) {
    return arg_error([&] { check_output_path("--out", out, k, {}); });
  };
  EXPECT_NE(msg(d / "plain/model", OutputKind::Directory).find("is not a directory"), std::string::npos);
  EXPECT_NE(msg(d / "plain/a/b/c", OutputKind::Directory).find("is not a directory"), std::string::npos);
  EXPECT_NE(msg(d / "plain", OutputKind::Directory).find("not a directory"), std::string::npos);
  EXPECT_NE(msg(d / "dir", OutputKind::File).find("is a directory"), std::string::npos);
  EXPECT_NE(msg("", OutputKind::File).find("must not be empty"), std::string::npos);
  EXPECT_EQ(msg(d / "dir", OutputKind::Directory), "") << "an existing output directory is replaced";
}
