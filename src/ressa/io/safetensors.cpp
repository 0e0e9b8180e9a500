// Safetensors reading (mmap + full validation before use), atomic writing, and sharded
// model-directory checkpoints. See safetensors.h for the format and the guarantees.
#include "ressa/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>
#include <utility>

#include "ressa/core/atomic_file.h"
#include "ressa/core/error.h"
#include "ressa/io/file_pages.h"

namespace ressa::io {
namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the reference's MAX_HEADER_SIZE
constexpr const char* kSingleFile = "model.safetensors";
constexpr const char* kIndexFile = "model.safetensors.index.json";

struct DTypeEntry {
  DType dtype;
  const char* name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F64, "F64", 8}, {DType::F32, "F32", 4}, {DType::F16, "F16", 2},
    {DType::BF16, "BF16", 2}, {DType::I64, "I64", 8}, {DType::I32, "I32", 4},
    {DType::I16, "I16", 2}, {DType::I8, "I8", 1}, {DType::U8, "U8", 1},
    {DType::BOOL, "BOOL", 1},
};

const DTypeEntry* lookup_dtype(const std::string& s) {
  for (const auto& e : kDTypes)
    if (s == e.name) return &e;
  return nullptr;
}

const DTypeEntry& entry_of(DType d) {
  for (const auto& e : kDTypes)
    if (e.dtype == d) return e;
  fail_arg("[dtype] invalid DType value ", static_cast<int>(d));
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << ']';
  return os.str();
}

// nbytes = numel(shape) * dtype_size; false on a negative dim or a product beyond int64.
// A zero dim makes numel 0 whatever the other dims are.
bool checked_nbytes(const std::vector<int64_t>& shape, DType dtype, uint64_t* out) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  int64_t numel = 1;
  for (int64_t d : shape)
    if (d < 0) return false;
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) {
    *out = 0;
    return true;
  }
  for (int64_t d : shape) {
    if (numel > kMax / d) return false;
    numel *= d;
  }
  const auto size = static_cast<int64_t>(dtype_size(dtype));
  if (numel > kMax / size) return false;
  *out = static_cast<uint64_t>(numel * size);
  return true;
}

// Parses JSON text; throws runtime_error "<fn><path>: invalid JSON ..." or on a duplicate key
// in any object (nlohmann would silently keep the last one, hiding a duplicated tensor).
json parse_json_strict(std::string_view text, const char* fn, const std::string& path) {
  std::vector<std::set<std::string>> open_objects;
  std::string duplicate;
  auto on_event = [&](int, json::parse_event_t ev, json& parsed) {
    if (ev == json::parse_event_t::object_start) {
      open_objects.emplace_back();
    } else if (ev == json::parse_event_t::object_end) {
      if (!open_objects.empty()) open_objects.pop_back();
    } else if (ev == json::parse_event_t::key && !open_objects.empty()) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!open_objects.back().insert(key).second && duplicate.empty()) duplicate = key;
    }
    return true;
  };
  json j;
  try {
    j = json::parse(text.begin(), text.end(), on_event);
  } catch (const json::exception& e) {
    fail(fn, path, ": invalid JSON: ", e.what());
  }
  if (!duplicate.empty()) fail(fn, path, ": duplicate key \"", duplicate, "\" in JSON");
  return j;
}

// Converts one header entry {"dtype", "shape", "data_offsets"} into a TensorInfo, checking
// the schema, dtype, shape, size and bounds against a data buffer of `buffer_size` bytes.
TensorInfo parse_entry(const std::string& name, const json& v, uint64_t buffer_size,
                       const char* fn, const std::string& path) {
  const std::string where = std::string(fn) + path + ": tensor \"" + name + "\": ";
  if (!v.is_object()) fail(where, "entry is not a JSON object (got ", v.type_name(), ")");
  for (const auto& item : v.items())
    if (item.key() != "dtype" && item.key() != "shape" && item.key() != "data_offsets")
      fail(where, "unexpected field \"", item.key(), "\" (expected dtype, shape, data_offsets)");
  for (const char* key : {"dtype", "shape", "data_offsets"})
    if (!v.contains(key)) fail(where, "missing field \"", key, "\"");

  TensorInfo t;
  t.name = name;
  const json& jd = v["dtype"];
  if (!jd.is_string()) fail(where, "dtype is not a string (got ", jd.type_name(), ")");
  const DTypeEntry* de = lookup_dtype(jd.get<std::string>());
  if (!de) fail(where, "unknown dtype \"", jd.get<std::string>(), "\"");
  t.dtype = de->dtype;

  const json& js = v["shape"];
  if (!js.is_array()) fail(where, "shape is not an array (got ", js.type_name(), ")");
  for (const json& d : js) {
    if (d.is_number_unsigned()) {
      if (d.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        fail(where, "shape dimension ", d.get<uint64_t>(), " is too large");
      t.shape.push_back(d.get<int64_t>());
    } else if (d.is_number_integer()) {
      fail(where, "negative shape dimension ", d.get<int64_t>());
    } else {
      fail(where, "shape entries must be integers (got ", d.dump(), ")");
    }
  }

  const json& jo = v["data_offsets"];
  if (!jo.is_array() || jo.size() != 2 || !jo[0].is_number_unsigned() ||
      !jo[1].is_number_unsigned())
    fail(where, "data_offsets must be [begin, end] of non-negative integers (got ", jo.dump(),
         ")");
  t.begin = jo[0].get<uint64_t>();
  t.end = jo[1].get<uint64_t>();
  if (t.begin > t.end) fail(where, "data_offsets [", t.begin, ", ", t.end, "] have begin > end");
  if (t.end > buffer_size)
    fail(where, "data_offsets [", t.begin, ", ", t.end, "] out of bounds: data buffer is ",
         buffer_size, " bytes");
  uint64_t nbytes = 0;
  if (!checked_nbytes(t.shape, t.dtype, &nbytes))
    fail(where, "shape ", shape_str(t.shape), " x ", de->name, " overflows");
  if (nbytes != t.end - t.begin)
    fail(where, "size ", t.end - t.begin, " bytes (data_offsets [", t.begin, ", ", t.end,
         "]) does not match shape ", shape_str(t.shape), " x ", de->name, " = ", nbytes, " bytes");
  return t;
}

// Shard names come from a file we do not trust: keep them plain names inside the directory.
bool is_plain_file_name(const std::string& f) {
  return !f.empty() && f != "." && f.find('/') == std::string::npos &&
         f.find('\\') == std::string::npos && f.find('\0') == std::string::npos &&
         f.find("..") == std::string::npos;
}

bool is_regular_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

void remove_if_exists(const std::string& path, const char* fn) {
  if (::unlink(path.c_str()) != 0 && errno != ENOENT)
    fail(fn, path, ": cannot remove stale file: ", std::strerror(errno));
}

}  // namespace

// ---- dtypes ----------------------------------------------------------------

size_t dtype_size(DType dtype) { return entry_of(dtype).size; }
const char* to_string(DType dtype) { return entry_of(dtype).name; }

DType parse_dtype(const std::string& s) {
  const DTypeEntry* e = lookup_dtype(s);
  if (!e) fail("[parse_dtype] unknown dtype \"", s, "\" (expected F64, F32, F16, BF16, I64, I32, "
               "I16, I8, U8 or BOOL)");
  return e->dtype;
}

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;  // validated at load: no overflow
  return n;
}

// ---- header parsing (no I/O: SafetensorsFile::open and the fuzzer share it) ----------------

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t size,
                                           const std::string& where) {
  const char* fn = "[SafetensorsFile::open] ";
  if (size < 8)
    fail(fn, where, ": truncated file: ", size, " bytes, expected at least 8 (the header length)");
  SafetensorsHeader h;
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(bytes[i]) << (8 * i);
  if (n == 0) fail(fn, where, ": header length is 0");
  if (n > kMaxHeaderBytes)
    fail(fn, where, ": header length ", n, " exceeds the limit of ", kMaxHeaderBytes, " bytes");
  if (n > size - 8)
    fail(fn, where, ": header length ", n, " runs past end of file (file is ", size,
         " bytes, at most ", size - 8, " available)");
  h.data_start = 8 + n;
  const uint64_t buffer_size = size - h.data_start;

  const json header = parse_json_strict(
      std::string_view(reinterpret_cast<const char*>(bytes + 8), n), fn, where);
  if (!header.is_object())
    fail(fn, where, ": header is not a JSON object (got ", header.type_name(), ")");
  // nlohmann::json keeps keys in a std::map, so h.tensors comes out sorted by name.
  for (const auto& item : header.items()) {
    if (item.key() == "__metadata__") {
      if (!item.value().is_object())
        fail(fn, where, ": __metadata__ is not a JSON object (got ", item.value().type_name(), ")");
      for (const auto& kv : item.value().items()) {
        if (!kv.value().is_string())
          fail(fn, where, ": __metadata__[\"", kv.key(), "\"] is not a string (got ",
               kv.value().type_name(), ")");
        h.metadata[kv.key()] = kv.value().get<std::string>();
      }
      continue;
    }
    h.tensors.push_back(parse_entry(item.key(), item.value(), buffer_size, fn, where));
  }

  // Like the reference (Metadata::validate + MetadataIncompleteBuffer): sorted by
  // (begin, end), the ranges must tile the buffer exactly -- no overlap, no hole, no tail.
  std::vector<const TensorInfo*> by_offset;
  for (const auto& t : h.tensors) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::make_pair(a->begin, a->end) < std::make_pair(b->begin, b->end);
  });
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : by_offset) {
    if (t->begin < pos)
      fail(fn, where, ": overlapping data_offsets: tensor \"", t->name, "\" [", t->begin, ", ",
           t->end, "] overlaps tensor \"", prev->name, "\" [", prev->begin, ", ", prev->end, "]");
    if (t->begin > pos)
      fail(fn, where, ": gap in data buffer: bytes [", pos, ", ", t->begin,
           ") are not covered by any tensor (next is \"", t->name, "\")");
    pos = t->end;
    prev = t;
  }
  if (pos != buffer_size)
    fail(fn, where, ": trailing bytes: tensors cover ", pos, " of the ", buffer_size,
         " data buffer bytes");
  return h;
}

// ---- SafetensorsFile -----------------------------------------------------

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  const char* fn = "[SafetensorsFile::open] ";
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(fn, path, ": cannot open: ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    const int err = errno;
    ::close(fd);
    fail(fn, path, ": not a readable regular file: ", std::strerror(err));
  }
  f.file_size_ = static_cast<uint64_t>(st.st_size);
  if (f.file_size_ < 8) {
    ::close(fd);
    fail(fn, path, ": truncated file: ", f.file_size_,
         " bytes, expected at least 8 (the header length)");
  }
  void* m = ::mmap(nullptr, f.file_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);  // the mapping stays valid after close
  if (m == MAP_FAILED) fail(fn, path, ": mmap failed: ", std::strerror(err));
  f.map_ = m;  // from here on, ~SafetensorsFile unmaps if a check throws
  register_file_mapping(m, f.file_size_);  // streamed work may drop its pages (file_pages.h)

  SafetensorsHeader h = parse_safetensors_header(static_cast<const uint8_t*>(m), f.file_size_, path);
  f.data_start_ = h.data_start;
  f.tensors_ = std::move(h.tensors);
  f.metadata_ = std::move(h.metadata);
  return f;
}

SafetensorsFile::~SafetensorsFile() { unmap(); }

void SafetensorsFile::unmap() noexcept {
  if (map_) {
    unregister_file_mapping(map_);
    ::munmap(map_, file_size_);
  }
  map_ = nullptr;
}

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept
    : path_(std::move(o.path_)),
      map_(std::exchange(o.map_, nullptr)),
      file_size_(o.file_size_),
      data_start_(o.data_start_),
      tensors_(std::move(o.tensors_)),
      metadata_(std::move(o.metadata_)) {}

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    unmap();
    path_ = std::move(o.path_);
    map_ = std::exchange(o.map_, nullptr);
    file_size_ = o.file_size_;
    data_start_ = o.data_start_;
    tensors_ = std::move(o.tensors_);
    metadata_ = std::move(o.metadata_);
  }
  return *this;
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                             [](const TensorInfo& t, const std::string& n) { return t.name < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

const TensorInfo& SafetensorsFile::at(const std::string& name) const {
  const TensorInfo* t = find(name);
  if (!t) fail("[SafetensorsFile::at] ", path_, ": no tensor named \"", name, "\"");
  return *t;
}

const uint8_t* SafetensorsFile::data(const TensorInfo& info) const {
  // Guards against a TensorInfo taken from another file.
  RESSA_CHECK(map_ && info.begin <= info.end && info.end <= data_size(),
              "[SafetensorsFile::data] ", path_, ": tensor \"", info.name, "\" range [",
              info.begin, ", ", info.end, "] is outside the ", data_size(), "-byte data buffer");
  return static_cast<const uint8_t*>(map_) + data_start_ + info.begin;
}

// ---- writing ---------------------------------------------------------------

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const char* fn = "[write_safetensors] ";
  // ordered_json keeps insertion order: __metadata__ first, then tensors as given, and keys
  // dtype, shape, data_offsets in the reference's field order.
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint64_t> sizes;
  std::set<std::string> seen;
  uint64_t offset = 0;
  for (const TensorView& t : tensors) {
    if (t.name.empty()) fail_arg(fn, path, ": empty tensor name");
    if (t.name == "__metadata__") fail_arg(fn, path, ": tensor name \"__metadata__\" is reserved");
    if (!seen.insert(t.name).second) fail_arg(fn, path, ": duplicate tensor name \"", t.name, "\"");
    uint64_t nbytes = 0;
    if (!checked_nbytes(t.shape, t.dtype, &nbytes))
      fail_arg(fn, path, ": tensor \"", t.name, "\": invalid shape ", shape_str(t.shape),
               " (negative dim or size overflow)");
    if (nbytes > 0 && !t.data) fail_arg(fn, path, ": tensor \"", t.name, "\": data is null");
    nlohmann::ordered_json e;
    e["dtype"] = to_string(t.dtype);
    e["shape"] = t.shape;
    e["data_offsets"] = {offset, offset + nbytes};
    header[t.name] = std::move(e);
    sizes.push_back(nbytes);
    offset += nbytes;
  }
  std::string text;
  try {
    text = header.dump();  // compact, like serde_json::to_string
  } catch (const nlohmann::json::exception& e) {
    fail_arg(fn, path, ": tensor names and metadata must be valid UTF-8: ", e.what());
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the reference pads the header to 8 bytes

  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{text.size()} >> (8 * i));
  AtomicFile out(path);
  out.write(len, sizeof len);
  out.write(text.data(), text.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i] == 0) continue;
    out.write(tensors[i].data, sizes[i]);
    release_file_pages(tensors[i].data, sizes[i]);  // a tensor read from a mapping leaves no pages behind
  }
  out.commit();
}

void write_checkpoint_dir(const std::string& dir, const std::vector<TensorView>& tensors,
                          const std::map<std::string, std::string>& metadata,
                          uint64_t max_shard_bytes) {
  const char* fn = "[write_checkpoint_dir] ";
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) fail(fn, dir, ": cannot create directory: ", ec.message());
  const std::string single = dir + "/" + kSingleFile;
  const std::string index = dir + "/" + kIndexFile;

  // Names must be unique across shards, which per-file checks cannot see.
  std::set<std::string> seen;
  std::vector<uint64_t> sizes;
  uint64_t total = 0;
  for (const TensorView& t : tensors) {
    if (!seen.insert(t.name).second) fail_arg(fn, dir, ": duplicate tensor name \"", t.name, "\"");
    uint64_t nbytes = 0;
    if (!checked_nbytes(t.shape, t.dtype, &nbytes))
      fail_arg(fn, dir, ": tensor \"", t.name, "\": invalid shape ", shape_str(t.shape));
    sizes.push_back(nbytes);
    total += nbytes;
  }

  if (max_shard_bytes == 0 || total <= max_shard_bytes) {
    write_safetensors(single, tensors, metadata);
    remove_if_exists(index, fn);
    return;
  }

  // Greedy packing in the given order; a shard closes when the next tensor would overflow it.
  std::vector<std::vector<TensorView>> shards(1);
  uint64_t shard_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (!shards.back().empty() && shard_bytes + sizes[i] > max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(tensors[i]);
    shard_bytes += sizes[i];
  }

  json weight_map = json::object();
  for (size_t k = 0; k < shards.size(); ++k) {
    char name[64];
    std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", k + 1, shards.size());
    write_safetensors(dir + "/" + name, shards[k], metadata);
    for (const TensorView& t : shards[k]) weight_map[t.name] = name;
  }
  // The index is written last, so a crash before it leaves no index pointing at missing shards.
  json j = {{"metadata", {{"total_size", total}}}, {"weight_map", std::move(weight_map)}};
  write_file_atomic(index, j.dump(2) + "\n");
  remove_if_exists(single, fn);
}

// ---- Checkpoint ------------------------------------------------------------

std::map<std::string, std::string> parse_safetensors_index(const std::string& text,
                                                           const std::string& where) {
  const char* fn = "[Checkpoint::open_dir] ";
  // The index "metadata" (e.g. total_size) is informational only and not checked: real
  // checkpoints disagree on what total_size counts.
  const json j = parse_json_strict(text, fn, where);
  if (!j.is_object()) fail(fn, where, ": not a JSON object (got ", j.type_name(), ")");
  if (j.contains("metadata") && !j["metadata"].is_object())
    fail(fn, where, ": \"metadata\" is not a JSON object");
  if (!j.contains("weight_map") || !j["weight_map"].is_object())
    fail(fn, where, ": missing \"weight_map\" object");
  std::map<std::string, std::string> weight_map;
  for (const auto& item : j["weight_map"].items()) {
    if (!item.value().is_string())
      fail(fn, where, ": weight_map[\"", item.key(), "\"] is not a string");
    const std::string file = item.value().get<std::string>();
    if (!is_plain_file_name(file))
      fail(fn, where, ": shard file name \"", file, "\" for tensor \"", item.key(),
           "\" escapes the directory (must be a plain file name)");
    weight_map[item.key()] = file;
  }
  return weight_map;
}

Checkpoint Checkpoint::open_dir(const std::string& dir) {
  const char* fn = "[Checkpoint::open_dir] ";
  const std::string single = dir + "/" + kSingleFile;
  const std::string index = dir + "/" + kIndexFile;
  const bool has_single = is_regular_file(single), has_index = is_regular_file(index);
  if (has_single && has_index)
    fail(fn, dir, ": both ", kSingleFile, " and ", kIndexFile, " exist (ambiguous checkpoint)");
  if (!has_single && !has_index)
    fail(fn, dir, ": no ", kSingleFile, " or ", kIndexFile, " found");

  Checkpoint c;
  c.dir_ = dir;
  if (has_single) {
    c.files_.push_back(SafetensorsFile::open(single));
    for (const TensorInfo& t : c.files_[0].tensors()) c.index_[t.name] = {0, &t};
    c.metadata_ = c.files_[0].metadata();
    c.use_module_names();
    return c;
  }

  const std::map<std::string, std::string> weight_map =  // tensor -> shard file name
      parse_safetensors_index(read_file(index), index);
  std::map<std::string, size_t> shard_of_file;  // shard file name -> index into files_
  for (const auto& item : weight_map) shard_of_file.emplace(item.second, 0);
  for (auto& [file, idx] : shard_of_file) {
    const std::string path = dir + "/" + file;
    if (!is_regular_file(path)) fail(fn, index, ": missing shard file ", path);
    idx = c.files_.size();
    c.files_.push_back(SafetensorsFile::open(path));
  }
  for (const auto& [name, file] : weight_map) {
    const size_t k = shard_of_file.at(file);
    const TensorInfo* t = c.files_[k].find(name);
    if (!t)
      fail(fn, index, ": tensor \"", name, "\" listed in weight_map is missing from shard ",
           c.files_[k].path());
    c.index_[name] = {k, t};
  }
  for (const auto& [file, k] : shard_of_file) {
    for (const TensorInfo& t : c.files_[k].tensors()) {
      auto it = weight_map.find(t.name);
      if (it == weight_map.end())
        fail(fn, index, ": tensor \"", t.name, "\" in shard ", c.files_[k].path(),
             " is not listed in weight_map");
      if (it->second != file)
        fail(fn, index, ": tensor \"", t.name, "\" appears in two shards: ", file, " and ",
             it->second, " (weight_map says ", it->second, ")");
    }
    for (const auto& [key, value] : c.files_[k].metadata()) {
      auto [it, inserted] = c.metadata_.emplace(key, value);
      if (!inserted && it->second != value)
        fail(fn, index, ": shards disagree on __metadata__[\"", key, "\"]: \"", it->second,
             "\" vs \"", value, "\" in ", c.files_[k].path());
    }
  }
  c.use_module_names();
  return c;
}

void Checkpoint::use_module_names() {
  std::vector<std::string> file_names;
  for (const auto& kv : index_) file_names.push_back(kv.first);
  layout_ = detect_key_layout(file_names);
  if (layout_ == KeyLayout::kLegacy) return;
  std::map<std::string, Loc> renamed;
  for (const auto& [name, loc] : index_) {
    const std::string module_name = to_module_name(name, layout_);
    if (!renamed.emplace(module_name, loc).second)
      fail("[Checkpoint::open_dir] ", files_[loc.file].path(), ": tensors \"", name, "\" and \"", module_name,
           "\" name the same weight in the two key layouts");
  }
  index_ = std::move(renamed);
}

const Checkpoint::Loc& Checkpoint::locate(const std::string& name, const char* fn) const {
  auto it = index_.find(name);
  if (it == index_.end()) fail(fn, dir_, ": no tensor named \"", name, "\"");
  return it->second;
}

std::vector<std::string> Checkpoint::names() const {
  std::vector<std::string> out;
  out.reserve(index_.size());
  for (const auto& kv : index_) out.push_back(kv.first);
  return out;
}

bool Checkpoint::contains(const std::string& name) const { return index_.count(name) > 0; }
const TensorInfo& Checkpoint::info(const std::string& name) const {
  return *locate(name, "[Checkpoint::info] ").info;
}

const uint8_t* Checkpoint::data(const std::string& name) const {
  const Loc& loc = locate(name, "[Checkpoint::data] ");
  return files_[loc.file].data(*loc.info);
}

std::string Checkpoint::file_of(const std::string& name) const {
  return files_[locate(name, "[Checkpoint::file_of] ").file].path();
}

}  // namespace ressa::io
