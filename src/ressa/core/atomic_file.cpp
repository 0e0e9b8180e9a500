// Atomic file output (temp + fsync + rename) and whole-file reading.
#include "ressa/core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "ressa/core/error.h"

namespace ressa {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
  tmp_path_ = path_ + ".tmp." + std::to_string(::getpid());
  fd_ = ::open(tmp_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("[write] ", path_, ": cannot create file: ", std::strerror(errno));
}

AtomicFile::~AtomicFile() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      fail("[write] ", path_, ": write failed: ", std::strerror(errno));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

void AtomicFile::commit() {
  if (::fsync(fd_) != 0) fail("[write] ", path_, ": fsync failed: ", std::strerror(errno));
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail("[write] ", path_, ": close failed: ", std::strerror(errno));
  }
  fd_ = -1;
  if (::rename(tmp_path_.c_str(), path_.c_str()) != 0)
    fail("[write] ", path_, ": rename failed: ", std::strerror(errno));
  committed_ = true;
}

void write_file_atomic(const std::string& path, std::string_view bytes) {
  AtomicFile f(path);
  f.write(bytes.data(), bytes.size());
  f.commit();
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("[read_file] ", path, ": cannot open: ", std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) fail("[read_file] ", path, ": read error");
  return ss.str();
}

}  // namespace ressa

#include <filesystem>

namespace ressa {

std::string begin_output_dir(const std::string& out) {
  namespace fs = std::filesystem;
  RESSA_CHECK(!out.empty(), "[output] empty output path");
  std::string o = out;
  while (o.size() > 1 && o.back() == '/') o.pop_back();
  const std::string staging = o + ".partial";
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) fail("[output] ", staging, ": cannot create directory: ", ec.message());
  return staging;
}

void commit_output_dir(const std::string& staging, const std::string& out) {
  namespace fs = std::filesystem;
  std::string o = out;
  while (o.size() > 1 && o.back() == '/') o.pop_back();
  std::error_code ec;
  const std::string old = o + ".old";
  if (fs::exists(o)) {
    fs::remove_all(old, ec);
    fs::rename(o, old, ec);
    if (ec) fail("[output] ", o, ": cannot replace existing output: ", ec.message());
  }
  fs::rename(staging, o, ec);
  if (ec) fail("[output] ", o, ": cannot move ", staging, " into place: ", ec.message());
  fs::remove_all(old, ec);
}

}  // namespace ressa
