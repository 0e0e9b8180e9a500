// IDX reader (raw or gzip). Order of checks, as for the other ressa parsers: decompress with
// a size cap, then magic, then dimensions, then the exact data length, and only then copy.
#include "ressa/data/idx.h"

#include <zlib.h>

#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ressa/core/error.h"

namespace ressa::data {

namespace {

bool is_gzip(std::string_view b) {
  return b.size() >= 2 && uint8_t(b[0]) == 0x1f && uint8_t(b[1]) == 0x8b;
}

uint32_t be32(std::string_view b, size_t off) {
  return (uint32_t(uint8_t(b[off])) << 24) | (uint32_t(uint8_t(b[off + 1])) << 16) |
         (uint32_t(uint8_t(b[off + 2])) << 8) | uint32_t(uint8_t(b[off + 3]));
}

std::string hex32(uint32_t v) {
  char s[16];
  std::snprintf(s, sizeof s, "0x%08x", v);
  return s;
}

std::string gunzip_impl(std::string_view in, const char* where, const std::string& name,
                        uint64_t max_bytes) {
  z_stream zs{};
  if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK)  // 16: gzip wrapper only
    fail(where, " ", name, ": cannot initialise zlib");
  std::string out;
  char buf[1 << 16];
  size_t pos = 0;  // input consumed so far
  int rc = Z_OK;
  try {
    while (true) {
      const size_t chunk = std::min<size_t>(in.size() - pos, UINT_MAX);
      zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data() + pos));
      zs.avail_in = uInt(chunk);
      zs.next_out = reinterpret_cast<Bytef*>(buf);
      zs.avail_out = sizeof buf;
      rc = inflate(&zs, Z_NO_FLUSH);
      pos += chunk - zs.avail_in;
      const size_t produced = sizeof buf - zs.avail_out;
      if (out.size() + produced > max_bytes)
        fail(where, " ", name, ": decompressed size exceeds the limit of ", max_bytes, " bytes");
      out.append(buf, produced);
      if (rc == Z_STREAM_END) {
        if (pos == in.size()) break;
        // Concatenated gzip members are one valid stream (RFC 1952); anything else is not.
        if (!is_gzip(in.substr(pos)))
          fail(where, " ", name, ": ", in.size() - pos, " bytes of trailing garbage after gzip data");
        if (inflateReset(&zs) != Z_OK) fail(where, " ", name, ": cannot reset zlib");
        continue;
      }
      if (rc == Z_BUF_ERROR || (rc == Z_OK && pos == in.size() && produced == 0))
        fail(where, " ", name, ": truncated gzip data (stream ends after ", out.size(),
             " decompressed bytes)");
      if (rc != Z_OK)
        fail(where, " ", name, ": corrupt gzip data: ", zs.msg ? zs.msg : "zlib error ",
             zs.msg ? "" : std::to_string(rc));
    }
  } catch (...) {
    inflateEnd(&zs);
    throw;
  }
  inflateEnd(&zs);
  return out;
}

// Raw IDX bytes of `in` (decompressed if gzip).
std::string_view raw_bytes(std::string_view in, std::string& storage, const char* where,
                           const std::string& name) {
  if (!is_gzip(in)) return in;
  storage = gunzip_impl(in, where, name, kIdxMaxBytes);
  return storage;
}

// Checks the magic and the header length; returns the dimensions (header = 4 + 4 * ndim).
std::vector<uint32_t> parse_header(std::string_view b, uint32_t magic, const char* what,
                                   const char* where, const std::string& name) {
  const int ndim = int(magic & 0xFF);
  const size_t header = 4 + 4 * size_t(ndim);
  if (b.size() < 4)
    fail(where, " ", name, ": truncated header: file has ", b.size(), " bytes, expected at least ",
         header);
  const uint32_t got = be32(b, 0);
  if (got != magic)
    fail(where, " ", name, ": bad magic number ", hex32(got), ", expected ", hex32(magic), " (",
         what, ")");
  if (b.size() < header)
    fail(where, " ", name, ": truncated header: file has ", b.size(), " bytes, expected at least ",
         header);
  std::vector<uint32_t> dims(ndim);
  for (int i = 0; i < ndim; ++i) dims[i] = be32(b, 4 + 4 * size_t(i));
  return dims;
}

void check_length(std::string_view b, uint64_t header, uint64_t data, const std::string& shape,
                  const char* where, const std::string& name) {
  const uint64_t have = b.size() - header;
  if (have < data)
    fail(where, " ", name, ": truncated: header says ", shape, " (", data, " bytes of data), file has ",
         have);
  if (have > data)
    fail(where, " ", name, ": ", have - data, " unexpected bytes after the ", shape, " (", data,
         " bytes of data) the header declares");
}

IdxImages parse_images(std::string_view in, const char* where, const std::string& name) {
  std::string storage;
  const std::string_view b = raw_bytes(in, storage, where, name);
  const auto d = parse_header(b, kIdxImagesMagic, "IDX unsigned-byte images: count, rows, cols",
                              where, name);
  if (d[0] > uint32_t(INT_MAX))
    fail(where, " ", name, ": image count ", d[0], " exceeds ", INT_MAX);
  for (int i = 1; i < 3; ++i)
    if (d[i] == 0 || d[i] > uint32_t(kIdxMaxSide))
      fail(where, " ", name, ": ", i == 1 ? "rows" : "cols", " = ", d[i], " outside 1..",
           kIdxMaxSide);
  const uint64_t data = uint64_t(d[0]) * d[1] * d[2];
  const std::string shape =
      std::to_string(d[0]) + " images of " + std::to_string(d[1]) + "x" + std::to_string(d[2]);
  if (data > kIdxMaxBytes)
    fail(where, " ", name, ": header declares ", shape, " (", data, " bytes), over the limit of ",
         kIdxMaxBytes);
  check_length(b, 16, data, shape, where, name);
  IdxImages img;
  img.count = int(d[0]), img.rows = int(d[1]), img.cols = int(d[2]);
  img.pixels.assign(b.begin() + 16, b.end());
  return img;
}

std::vector<uint8_t> parse_labels(std::string_view in, const char* where, const std::string& name) {
  std::string storage;
  const std::string_view b = raw_bytes(in, storage, where, name);
  const auto d = parse_header(b, kIdxLabelsMagic, "IDX unsigned-byte labels: count", where, name);
  if (d[0] > uint32_t(INT_MAX))
    fail(where, " ", name, ": label count ", d[0], " exceeds ", INT_MAX);
  check_length(b, 8, d[0], std::to_string(d[0]) + " labels", where, name);
  return std::vector<uint8_t>(b.begin() + 8, b.end());
}

std::string read_whole(const std::string& path, const char* where) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) fail(where, " ", path, ": no such file");
  if (fs::is_directory(path, ec)) fail(where, " ", path, ": is a directory, expected an IDX file");
  const auto size = fs::file_size(path, ec);
  if (!ec && size > kIdxMaxBytes)
    fail(where, " ", path, ": file is ", size, " bytes, over the limit of ", kIdxMaxBytes);
  std::ifstream f(path, std::ios::binary);
  if (!f) fail(where, " ", path, ": cannot open: ", std::strerror(errno));
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(where, " ", path, ": read error");
  return ss.str();
}

}  // namespace

std::string gunzip(std::string_view bytes, const std::string& name, uint64_t max_bytes) {
  return gunzip_impl(bytes, "[gunzip]", name, max_bytes);
}

IdxImages parse_idx_images(std::string_view bytes, const std::string& name) {
  return parse_images(bytes, "[parse_idx_images]", name);
}

std::vector<uint8_t> parse_idx_labels(std::string_view bytes, const std::string& name) {
  return parse_labels(bytes, "[parse_idx_labels]", name);
}

IdxImages read_idx_images(const std::string& path) {
  return parse_images(read_whole(path, "[read_idx_images]"), "[read_idx_images]", path);
}

std::vector<uint8_t> read_idx_labels(const std::string& path) {
  return parse_labels(read_whole(path, "[read_idx_labels]"), "[read_idx_labels]", path);
}

IdxDataset read_idx_dataset(const std::string& images_path, const std::string& labels_path) {
  IdxDataset ds;
  ds.images = read_idx_images(images_path);
  ds.labels = read_idx_labels(labels_path);
  if (size_t(ds.images.count) != ds.labels.size())
    fail("[read_idx_dataset] ", images_path, " holds ", ds.images.count, " images but ",
         labels_path, " holds ", ds.labels.size(), " labels");
  return ds;
}

}  // namespace ressa::data
