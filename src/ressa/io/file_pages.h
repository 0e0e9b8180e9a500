// Resident pages of file mappings. A mapped file's pages count in the process's resident memory
// once read, and stay until unmapped: reading a 14 GB checkpoint through its mapping block by
// block would end with 14 GB resident. Streamed work (layer-streamed pruning: docs/architecture.md
// "Memory when pruning") drops the pages of what it has finished with; the data stays in the
// file (and the kernel's page cache), and a later read faults it back in.
//
// Only read-only file mappings registered here are ever released (SafetensorsFile, SpillFile):
// dropping an anonymous page would lose its contents, so any other address is left alone.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace ressa::io {

// Registers / forgets a read-only file mapping [p, p + n) (done by its owner when it maps and
// unmaps). Thread-safe.
void register_file_mapping(const void* p, uint64_t n);
void unregister_file_mapping(const void* p);

// Drops the resident pages wholly inside [p, p + n) when the range lies in one registered file
// mapping (partial pages at the ends stay); returns whether it did. Any other range is left alone.
bool release_file_pages(const void* p, uint64_t n);
// Drops the resident pages of every registered file mapping.
void release_all_file_pages();

// An unnamed scratch file on disk (created in `dir` and unlinked at once, so nothing is left
// behind by a crash) holding byte blocks that are read back through read-only mappings: where
// streamed pruning keeps the pruned weights and masks of finished blocks, in file pages that
// release_file_pages can drop, instead of memory. Not copyable; the mappings live as long as it.
class SpillFile {
 public:
  explicit SpillFile(const std::string& dir);
  ~SpillFile();
  SpillFile(const SpillFile&) = delete;
  SpillFile& operator=(const SpillFile&) = delete;

  // Appends n bytes (at a page-aligned offset) and returns a read-only mapping of them, valid
  // while this file lives. Throws std::runtime_error naming the directory on a write error
  // (a full disk, for example).
  const void* append(const void* data, uint64_t n);
  uint64_t size() const { return size_; }  // bytes written, with the alignment padding

 private:
  std::string dir_;
  int fd_ = -1;
  uint64_t size_ = 0;
  std::vector<std::pair<void*, uint64_t>> maps_;
};

}  // namespace ressa::io
