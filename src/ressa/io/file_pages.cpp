// Registry of read-only file mappings whose resident pages may be dropped, and SpillFile.
#include "ressa/io/file_pages.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>

namespace ressa::io {
namespace {

std::mutex& registry_mutex() {
  static std::mutex m;
  return m;
}
std::map<uintptr_t, uint64_t>& registry() {  // begin -> length
  static std::map<uintptr_t, uint64_t> r;
  return r;
}

uintptr_t page_size() {
  static const uintptr_t p = static_cast<uintptr_t>(::sysconf(_SC_PAGESIZE));
  return p;
}

// The registered mapping holding [b, e), or registry().end().
std::map<uintptr_t, uint64_t>::const_iterator holder(uintptr_t b, uintptr_t e) {
  auto& r = registry();
  auto it = r.upper_bound(b);
  if (it == r.begin()) return r.end();
  --it;
  return e <= it->first + it->second ? it : r.end();
}

void drop(uintptr_t b, uintptr_t e) {
  const uintptr_t ps = page_size();
  b = (b + ps - 1) / ps * ps;
  e = e / ps * ps;
  // Read-only private or shared file pages: MADV_DONTNEED only unmaps them (a later read
  // faults the file's bytes back in).
  if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_DONTNEED);
}

}  // namespace

void register_file_mapping(const void* p, uint64_t n) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry()[reinterpret_cast<uintptr_t>(p)] = n;
}

void unregister_file_mapping(const void* p) {
  std::lock_guard<std::mutex> lock(registry_mutex());
  registry().erase(reinterpret_cast<uintptr_t>(p));
}

bool release_file_pages(const void* p, uint64_t n) {
  const auto b = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(registry_mutex());
  if (n == 0 || holder(b, b + n) == registry().end()) return false;
  drop(b, b + n);
  return true;
}

void release_all_file_pages() {
  std::lock_guard<std::mutex> lock(registry_mutex());
  for (const auto& [b, n] : registry()) drop(b, b + n);
}

SpillFile::SpillFile(const std::string& dir) : dir_(dir) {
  // O_TMPFILE where the filesystem has it; else a named file unlinked at once.
  fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    std::string tmpl = dir + "/.ressa-spill-XXXXXX";
    fd_ = ::mkostemp(tmpl.data(), O_CLOEXEC);
    if (fd_ >= 0) ::unlink(tmpl.c_str());
  }
  if (fd_ < 0) throw std::runtime_error("[SpillFile] " + dir + ": cannot create a scratch file: " + std::strerror(errno));
}

SpillFile::~SpillFile() {
  for (auto [p, n] : maps_) {
    unregister_file_mapping(p);
    ::munmap(p, n);
  }
  if (fd_ >= 0) ::close(fd_);
}

const void* SpillFile::append(const void* data, uint64_t n) {
  const uint64_t ps = page_size();
  const uint64_t at = (size_ + ps - 1) / ps * ps;
  const uint64_t len = n == 0 ? 1 : n;  // a zero-length block still gets a page to point at
  const auto* src = static_cast<const char*>(data);
  for (uint64_t done = 0; done < n;) {
    const ssize_t w = ::pwrite(fd_, src + done, n - done, static_cast<off_t>(at + done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0)
      throw std::runtime_error("[SpillFile] " + dir_ + ": cannot write " + std::to_string(n) +
                               " bytes of scratch data: " + std::strerror(errno));
    done += static_cast<uint64_t>(w);
  }
  if (n == 0 && ::ftruncate(fd_, static_cast<off_t>(at + len)) != 0)
    throw std::runtime_error("[SpillFile] " + dir_ + ": cannot extend the scratch file: " + std::strerror(errno));
  void* m = ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd_, static_cast<off_t>(at));
  if (m == MAP_FAILED)
    throw std::runtime_error("[SpillFile] " + dir_ + ": cannot map the scratch file: " + std::strerror(errno));
  maps_.emplace_back(m, len);
  register_file_mapping(m, len);
  size_ = at + len;
  return m;
}

}  // namespace ressa::io
