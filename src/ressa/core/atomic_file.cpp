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


namespace {
namespace fs = std::filesystem;

fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path a = fs::absolute(p, ec);
  if (ec) a = p;
  fs::path c = fs::weakly_canonical(a, ec);
  return ec ? a.lexically_normal() : c;
}

// True when `a` equals `b` or is a directory above it (both resolved).
bool same_or_above(const fs::path& a, const fs::path& b) {
  auto ia = a.begin(), ib = b.begin();
  for (; ia != a.end(); ++ia, ++ib) {
    if (ia->empty()) continue;  // a trailing "/" gives an empty last element
    if (ib == b.end() || *ia != *ib) return false;
  }
  return true;
}
}  // namespace

void check_output_path(const std::string& flag, const std::string& out, OutputKind kind,
                       const std::vector<std::pair<std::string, std::string>>& inputs) {
  RESSA_CHECK_ARG(!out.empty(), "[output] ", flag, " must not be empty");
  std::string o = out;
  while (o.size() > 1 && o.back() == '/') o.pop_back();
  std::vector<std::string> written = {o};
  if (kind == OutputKind::Directory)
    for (const char* suffix : {".partial", ".old", ".ckpt"}) written.push_back(o + suffix);
  for (const auto& [in_flag, in_path] : inputs) {
    if (in_path.empty()) continue;
    const fs::path in = resolved(in_path);
    for (const std::string& w : written) {
      const fs::path rw = resolved(w);
      const char* how = rw == in ? " is " : same_or_above(rw, in) ? " contains " : same_or_above(in, rw) ? " is inside " : nullptr;
      if (!how) continue;
      if (w == o)
        fail_arg("[output] ", flag, " ", out, how, "the input ", in_flag, " ", in_path,
                 "; writing there could destroy that input (choose a path outside it)");
      fail_arg("[output] ", flag, " ", out, ": ressa would write ", w, ", which", how, "the input ", in_flag, " ",
               in_path, " (choose another path)");
    }
  }
  std::error_code ec;
  const fs::file_status st = fs::status(o, ec);
  if (fs::exists(st)) {
    if (kind == OutputKind::Directory && !fs::is_directory(st))
      fail_arg("[output] ", flag, " ", out, " exists and is not a directory");
    if (kind == OutputKind::File && fs::is_directory(st))
      fail_arg("[output] ", flag, " ", out, " is a directory, expected a file path");
  }
  // The nearest existing ancestor must be a directory, or nothing can ever be created there.
  fs::path parent = fs::absolute(fs::path(o), ec).parent_path();
  while (!parent.empty() && !fs::exists(parent, ec) && parent != parent.root_path()) parent = parent.parent_path();
  if (!parent.empty() && fs::exists(parent, ec) && !fs::is_directory(parent, ec))
    fail_arg("[output] ", flag, " ", out, ": cannot create it: ", parent.string(), " is not a directory");
  if (!parent.empty() && fs::is_directory(parent, ec) && ::access(parent.c_str(), W_OK | X_OK) != 0)
    fail_arg("[output] ", flag, " ", out, ": cannot create it: directory ", parent.string(),
             " is not writable (", std::strerror(errno), ")");
}

void write_output_dir(const std::string& out, const std::function<void(const std::string& staging)>& fill) {
  const std::string staging = begin_output_dir(out);
  try {
    fill(staging);
    commit_output_dir(staging, out);
  } catch (...) {
    std::error_code ec;
    std::filesystem::remove_all(staging, ec);
    throw;
  }
}

}  // namespace ressa
