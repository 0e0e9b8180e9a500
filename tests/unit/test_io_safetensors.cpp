// Tests for ressa::io safetensors: round trips (all dtypes, 0-d, empty, metadata, shards), a
// golden byte-level layout check against the reference format, and hand-made corrupt files and
// index.json files that must each fail with a message naming the file and the problem.
#include "ressa/io/safetensors.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

#include "ressa/core/atomic_file.h"

namespace {

using namespace ressa::io;
namespace fs = std::filesystem;

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(n >> (8 * i));
  return s;
}

// A safetensors file image: u64 header length, header text, data buffer.
std::string st_bytes(const std::string& header, const std::string& buffer = "") {
  return le64(header.size()) + header + buffer;
}

// Runs fn and expects a std::runtime_error whose message contains `path` and `phrase`.
void expect_error(const std::function<void()>& fn, const std::string& path,
                  const std::string& phrase) {
  try {
    fn();
    ADD_FAILURE() << "no exception; expected one containing \"" << phrase << "\"";
  } catch (const std::runtime_error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find(path), std::string::npos) << "path missing from: " << msg;
    EXPECT_NE(msg.find(phrase), std::string::npos) << "\"" << phrase << "\" missing from: " << msg;
  }
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/ressa_test_st_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  std::string dir_;
};

// Owned bytes for one tensor, filled with a pattern distinct per tensor.
struct Owned {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
};

Owned make_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, int seed) {
  int64_t numel = 1;
  for (int64_t d : shape) numel *= d;
  Owned t{name, dtype, std::move(shape), {}};
  t.bytes.resize(static_cast<size_t>(numel) * dtype_size(dtype));
  for (size_t i = 0; i < t.bytes.size(); ++i)
    t.bytes[i] = dtype == DType::BOOL ? (i + seed) % 2 : static_cast<uint8_t>(i * 31 + seed * 7);
  return t;
}

std::vector<TensorView> views(const std::vector<Owned>& ts) {
  std::vector<TensorView> out;
  for (const Owned& t : ts) out.push_back({t.name, t.dtype, t.shape, t.bytes.data()});
  return out;
}

TEST(DTypeTest, NamesSizesAndParse) {
  const std::vector<std::pair<DType, size_t>> all = {
      {DType::F64, 8}, {DType::F32, 4}, {DType::F16, 2}, {DType::BF16, 2}, {DType::I64, 8},
      {DType::I32, 4}, {DType::I16, 2}, {DType::I8, 1},  {DType::U8, 1},   {DType::BOOL, 1}};
  for (const auto& [d, size] : all) {
    EXPECT_EQ(dtype_size(d), size) << to_string(d);
    EXPECT_EQ(parse_dtype(to_string(d)), d);
  }
  EXPECT_STREQ(to_string(DType::BF16), "BF16");
  EXPECT_THROW(parse_dtype("F8_E4M3"), std::runtime_error);
  EXPECT_THROW(parse_dtype("f32"), std::runtime_error);
}

TEST_F(SafetensorsTest, RoundTripAllDtypesScalarEmptyAndMetadata) {
  const std::vector<Owned> ts = {
      make_tensor("f64", DType::F64, {2, 3}, 1),  make_tensor("f32", DType::F32, {5}, 2),
      make_tensor("scalar_f16", DType::F16, {}, 3),  // 0-d: numel 1
      make_tensor("empty_bf16", DType::BF16, {0, 3}, 4),
      make_tensor("i64", DType::I64, {2, 2}, 5),  make_tensor("i32", DType::I32, {3}, 6),
      make_tensor("i16", DType::I16, {1, 1, 2}, 7), make_tensor("i8", DType::I8, {4}, 8),
      make_tensor("u8", DType::U8, {7}, 9),       make_tensor("empty_u8", DType::U8, {0}, 10),
      make_tensor("bool", DType::BOOL, {3}, 11)};
  const std::map<std::string, std::string> meta = {{"format", "pt"},
                                                    {"note", "h\xc3\xa9llo \"q\""}};
  const std::string p = path("all.safetensors");
  write_safetensors(p, views(ts), meta);

  SafetensorsFile opened = SafetensorsFile::open(p);
  SafetensorsFile f = std::move(opened);  // moved-from object must not unmap
  EXPECT_EQ(f.path(), p);
  EXPECT_EQ(f.metadata(), meta);
  ASSERT_EQ(f.tensors().size(), ts.size());
  for (size_t i = 1; i < f.tensors().size(); ++i)
    EXPECT_LT(f.tensors()[i - 1].name, f.tensors()[i].name) << "tensors() is sorted by name";
  uint64_t total = 0;
  for (const Owned& t : ts) {
    SCOPED_TRACE(t.name);
    const TensorInfo& info = f.at(t.name);
    EXPECT_EQ(info.dtype, t.dtype);
    EXPECT_EQ(info.shape, t.shape);
    EXPECT_EQ(info.nbytes(), t.bytes.size());
    EXPECT_EQ(static_cast<size_t>(info.numel()) * dtype_size(info.dtype), t.bytes.size());
    EXPECT_EQ(info.begin, total) << "data is laid out in the given order";
    if (!t.bytes.empty()) {
      EXPECT_EQ(std::memcmp(f.data(info), t.bytes.data(), t.bytes.size()), 0);
    }
    total += t.bytes.size();
  }
  EXPECT_EQ(f.data_size(), total);
  EXPECT_EQ(f.at("scalar_f16").numel(), 1);
  EXPECT_EQ(f.at("empty_bf16").numel(), 0);
  EXPECT_EQ(f.find("nope"), nullptr);
  expect_error([&] { f.at("nope"); }, p, "no tensor named \"nope\"");
}

TEST_F(SafetensorsTest, EmptyTensorListRoundTrips) {
  const std::string p = path("none.safetensors");
  write_safetensors(p, {});
  EXPECT_EQ(ressa::read_file(p), le64(8) + "{}      ");
  EXPECT_TRUE(SafetensorsFile::open(p).tensors().empty());
}

// Bytes the reference (Python safetensors.numpy.save_file({"a": np.array([1, 2], np.float32)}))
// emits, built by hand: header `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}` is 54
// bytes, padded with 2 spaces to 56 = 0x38; then 1.0f = 00 00 80 3f, 2.0f = 00 00 00 40.
TEST_F(SafetensorsTest, GoldenBytesMatchReferenceLayout) {
  const std::string header = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(header.size(), 54u);
  const std::string expected = std::string("\x38\0\0\0\0\0\0\0", 8) + header + "  " +
                               std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);
  ASSERT_EQ(expected.size(), 72u);
  const float a[2] = {1.0f, 2.0f};
  const std::string p = path("golden.safetensors");
  write_safetensors(p, {{"a", DType::F32, {2}, a}});
  EXPECT_EQ(ressa::read_file(p), expected);

  // With metadata the reference puts "__metadata__" first: 85 bytes + 3 spaces = 88 = 0x58.
  const std::string header_m =
      R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  ASSERT_EQ(header_m.size(), 85u);
  const std::string pm = path("golden_meta.safetensors");
  write_safetensors(pm, {{"a", DType::F32, {2}, a}}, {{"format", "pt"}});
  EXPECT_EQ(ressa::read_file(pm), std::string("\x58\0\0\0\0\0\0\0", 8) + header_m + "   " +
                                      expected.substr(64));

  // And the reader accepts the hand-made reference bytes.
  ressa::write_file_atomic(p, expected);
  SafetensorsFile f = SafetensorsFile::open(p);
  float back[2];
  std::memcpy(back, f.data(f.at("a")), sizeof back);
  EXPECT_EQ(back[0], 1.0f);
  EXPECT_EQ(back[1], 2.0f);
}

TEST_F(SafetensorsTest, WriterRejectsBadArguments) {
  const float x[1] = {0};
  const std::string p = path("bad.safetensors");
  EXPECT_THROW(write_safetensors(p, {{"a", DType::F32, {1}, x}, {"a", DType::F32, {1}, x}}),
               std::invalid_argument);
  EXPECT_THROW(write_safetensors(p, {{"", DType::F32, {1}, x}}), std::invalid_argument);
  EXPECT_THROW(write_safetensors(p, {{"__metadata__", DType::F32, {1}, x}}), std::invalid_argument);
  EXPECT_THROW(write_safetensors(p, {{"a", DType::F32, {-1}, x}}), std::invalid_argument);
  EXPECT_THROW(write_safetensors(p, {{"a", DType::F32, {1}, nullptr}}), std::invalid_argument);
  EXPECT_FALSE(fs::exists(p)) << "nothing is written when arguments are bad";
}

TEST_F(SafetensorsTest, CorruptFilesFailWithClearMessages) {
  const std::string f32_2 = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string b8(8, '\x01'), b12(12, '\x01');
  struct Case {
    std::string name, bytes, phrase;
  };
  const std::vector<Case> cases = {
      {"truncated", std::string("\x05\0\0", 3), "truncated file"},
      {"zero_header", le64(0) + "{}", "header length is 0"},
      {"huge_header", le64(200'000'000) + "{}", "exceeds the limit"},
      {"header_past_end", le64(100) + "{}", "runs past end of file"},
      {"invalid_json", st_bytes(R"({"a":{"dtype":)"), "invalid JSON"},
      {"not_object", st_bytes("[1,2]"), "header is not a JSON object"},
      {"entry_not_object", st_bytes(R"({"a":3})"), "entry is not a JSON object"},
      {"unknown_dtype", st_bytes(R"({"a":{"dtype":"F8","shape":[1],"data_offsets":[0,1]}})", "x"),
       "unknown dtype \"F8\""},
      {"missing_field", st_bytes(R"({"a":{"dtype":"F32","data_offsets":[0,4]}})", "xxxx"),
       "missing field \"shape\""},
      {"extra_field",
       st_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1],"x":1}})", "x"),
       "unexpected field \"x\""},
      {"negative_dim", st_bytes(R"({"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}})"),
       "negative shape dimension"},
      {"float_dim", st_bytes(R"({"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}})", "x"),
       "shape entries must be integers"},
      {"offsets_type", st_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[0,"1"]}})", "x"),
       "data_offsets must be"},
      {"begin_after_end", st_bytes(R"({"a":{"dtype":"U8","shape":[1],"data_offsets":[1,0]}})", "x"),
       "begin > end"},
      {"out_of_bounds", st_bytes(f32_2, "xxxx"), "out of bounds"},
      {"size_mismatch", st_bytes(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", b8),
       "does not match shape"},
      {"overflow",
       st_bytes(R"({"a":{"dtype":"I64","shape":[4611686018427387904,4],"data_offsets":[0,8]}})",
                b8),
       "overflows"},
      {"overlap",
       st_bytes(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                b12),
       "overlapping data_offsets"},
      {"gap",
       st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                b12),
       "gap in data buffer"},
      {"trailing", st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", b8),
       "trailing bytes"},
      {"duplicate_name",
       st_bytes(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                b8),
       "duplicate key \"a\""},
      {"metadata_not_string", st_bytes(R"({"__metadata__":{"k":1}})"),
       "__metadata__[\"k\"] is not a string"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string p = path(c.name + ".safetensors");
    ressa::write_file_atomic(p, c.bytes);
    expect_error([&] { SafetensorsFile::open(p); }, p, c.phrase);
  }
  const std::string missing = path("does_not_exist.safetensors");
  expect_error([&] { SafetensorsFile::open(missing); }, missing, "cannot open");
}

TEST_F(SafetensorsTest, ShardedCheckpointRoundTrip) {
  std::vector<Owned> ts;
  for (int i = 0; i < 5; ++i)
    ts.push_back(make_tensor("layers." + std::to_string(i) + ".weight", DType::F32, {4, 4}, i));
  const std::map<std::string, std::string> meta = {{"format", "pt"}};
  const std::string d = path("model");
  // 64 bytes each, at most 150 per shard -> [0,1] [2,3] [4].
  write_checkpoint_dir(d, views(ts), meta, 150);
  const std::vector<std::string> shard = {d + "/model-00001-of-00003.safetensors",
                                          d + "/model-00002-of-00003.safetensors",
                                          d + "/model-00003-of-00003.safetensors"};
  for (const auto& s : shard) EXPECT_TRUE(fs::exists(s)) << s;
  EXPECT_FALSE(fs::exists(d + "/model.safetensors"));
  const auto index = nlohmann::json::parse(ressa::read_file(d + "/model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"], 5 * 64);
  EXPECT_EQ(index["weight_map"].size(), 5u);

  Checkpoint ck = Checkpoint::open_dir(d);
  std::vector<std::string> expected_names;
  for (const Owned& t : ts) expected_names.push_back(t.name);
  EXPECT_EQ(ck.names(), expected_names);
  EXPECT_EQ(ck.metadata(), meta);
  EXPECT_EQ(ck.files().size(), 3u);
  for (int i = 0; i < 5; ++i) {
    const Owned& t = ts[i];
    EXPECT_TRUE(ck.contains(t.name));
    EXPECT_EQ(ck.info(t.name).shape, t.shape);
    EXPECT_EQ(ck.file_of(t.name), shard[i / 2]);
    EXPECT_EQ(std::memcmp(ck.data(t.name), t.bytes.data(), t.bytes.size()), 0);
  }
  EXPECT_FALSE(ck.contains("nope"));
  expect_error([&] { ck.info("nope"); }, d, "no tensor named \"nope\"");

  // Rewriting unsharded replaces the index with model.safetensors, and back again.
  write_checkpoint_dir(d, views(ts), meta);
  EXPECT_FALSE(fs::exists(d + "/model.safetensors.index.json"));
  Checkpoint single = Checkpoint::open_dir(d);
  EXPECT_EQ(single.names(), expected_names);
  EXPECT_EQ(single.file_of("layers.3.weight"), d + "/model.safetensors");
  EXPECT_EQ(std::memcmp(single.data("layers.3.weight"), ts[3].bytes.data(), 64), 0);
  write_checkpoint_dir(d, views(ts), meta, 64);
  EXPECT_FALSE(fs::exists(d + "/model.safetensors"));
  EXPECT_EQ(Checkpoint::open_dir(d).files().size(), 5u);
}

TEST_F(SafetensorsTest, BadIndexFailsWithClearMessages) {
  const std::vector<Owned> ts = {make_tensor("x", DType::F32, {2}, 1),
                                 make_tensor("y", DType::F32, {2}, 2)};
  const std::string d = path("ck");
  write_checkpoint_dir(d, views(ts), {}, 8);  // one tensor per shard
  const std::string index = d + "/model.safetensors.index.json";
  const std::string s1 = "model-00001-of-00002.safetensors";
  const std::string s2 = "model-00002-of-00002.safetensors";
  auto write_index = [&](const nlohmann::json& weight_map) {
    ressa::write_file_atomic(index, nlohmann::json{{"weight_map", weight_map}}.dump());
  };
  const auto open = [&] { Checkpoint::open_dir(d); };

  write_index({{"x", s1}, {"y", "model-00009-of-00009.safetensors"}});
  expect_error(open, index, "missing shard file");
  write_index({{"x", s1}, {"y", s2}, {"ghost", s2}});
  expect_error(open, index, "\"ghost\" listed in weight_map is missing from shard");
  write_index({{"x", s1}, {"y", "../ck/" + s2}});
  expect_error(open, index, "escapes the directory");
  write_index({{"x", s1}, {"y", "sub/" + s2}});
  expect_error(open, index, "escapes the directory");
  write_index({{"x", 3}});
  expect_error(open, index, "is not a string");
  ressa::write_file_atomic(index, "{\"weight_map\": {");
  expect_error(open, index, "invalid JSON");
  ressa::write_file_atomic(index, "{\"metadata\": {}}");
  expect_error(open, index, "missing \"weight_map\"");

  // Shard 1 holds x and y, shard 2 holds y and z: y unlisted, then y in two shards.
  write_safetensors(d + "/" + s1, views({ts[0], ts[1]}));
  write_safetensors(d + "/" + s2, views({ts[1], make_tensor("z", DType::F32, {2}, 3)}));
  write_index({{"x", s1}, {"z", s2}});
  expect_error(open, index, "\"y\" in shard " + d + "/" + s1 + " is not listed in weight_map");
  write_index({{"x", s1}, {"y", s1}, {"z", s2}});
  expect_error(open, index, "\"y\" appears in two shards");

  // Both layouts at once, and neither.
  write_index({{"x", s1}, {"y", s1}});
  write_safetensors(d + "/model.safetensors", views(ts));
  expect_error(open, d, "ambiguous checkpoint");
  const std::string empty = path("empty");
  fs::create_directory(empty);
  expect_error([&] { Checkpoint::open_dir(empty); }, empty, "no model.safetensors");
}

}  // namespace
