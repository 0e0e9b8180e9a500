// Atomic file output: write to "<path>.tmp.<pid>" in the same directory, fsync, rename over
// <path>. A crash or kill mid-write leaves the previous file (if any) intact.
#pragma once
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ressa {

// Writes `bytes` to `path` atomically. Throws std::runtime_error naming the path on any
// failure (permission, disk full, missing directory); the temp file is removed on failure.
void write_file_atomic(const std::string& path, std::string_view bytes);

// Streaming variant for large files: open(), write() any number of times, commit().
// Destroying an uncommitted AtomicFile removes the temp file.
class AtomicFile {
 public:
  explicit AtomicFile(std::string path);
  ~AtomicFile();
  AtomicFile(const AtomicFile&) = delete;
  AtomicFile& operator=(const AtomicFile&) = delete;
  void write(const void* data, size_t n);
  void commit();  // flush, fsync, rename
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::string tmp_path_;
  int fd_ = -1;
  bool committed_ = false;
};

// Reads a whole file; throws std::runtime_error "[read_file] <path>: <reason>".
std::string read_file(const std::string& path);

}  // namespace ressa

namespace ressa {
// Output directories are built in a staging directory beside the target and swapped in at the
// end, so an interrupted run never leaves a half-written model at the target path.
// Returns "<out>.partial" (created empty; a stale one from a killed run is removed first).
std::string begin_output_dir(const std::string& out);
// Moves the staging directory into place (replacing an existing <out>).
void commit_output_dir(const std::string& staging, const std::string& out);
// The whole sequence: begin_output_dir, fill(staging), commit_output_dir; when fill (or the
// commit) throws, the staging directory is removed and the exception passed on, so nothing is
// left at <out> or <out>.partial.
void write_output_dir(const std::string& out, const std::function<void(const std::string& staging)>& fill);

// Checks an output path given by `flag` before anything is created (std::invalid_argument, exit 2
// in the CLI, naming the flags):
//   - `out` and the paths ressa derives from it (<out>.partial, <out>.old, <out>.ckpt) neither
//     are, contain, nor lie inside one of the `inputs` ({flag, path}; empty paths are skipped):
//     replacing the output at the end would delete or overwrite that input;
//   - the nearest existing ancestor of `out` is a writable directory (e.g. not a path under a
//     regular file), and an existing `out` is a directory (kind Directory) or not (kind File).
// Paths are compared after resolving symlinks, ".." and relative forms.
enum class OutputKind { Directory, File };
void check_output_path(const std::string& flag, const std::string& out, OutputKind kind,
                       const std::vector<std::pair<std::string, std::string>>& inputs);

}  // namespace ressa
