// safetensors reading/writing: round trips, metadata, and every malformed-file case gives
// its specific error (none crash). Cross-checks with the Python library live in
// tests/python/test_safetensors_interop.py.
#include <fstream>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "io/atomic_file.hpp"
#include "io/safetensors.hpp"
#include "test_helpers.hpp"

using lethe::io::SafetensorsFile;
using lethe::testing::expect_error;
using lethe::testing::TempDir;

namespace {

// Builds a file from a raw header string and a data section.
void write_raw(const std::filesystem::path& path, const std::string& header, const std::string& data,
               int64_t declared_length = -1) {
  uint64_t length = declared_length >= 0 ? static_cast<uint64_t>(declared_length) : header.size();
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  bytes += header + data;
  lethe::io::write_file_atomic(path, bytes);
}

}  // namespace

TEST(Safetensors, RoundTripKeepsTensorsDtypesAndMetadata) {
  TempDir dir;
  at::manual_seed(0);
  std::map<std::string, at::Tensor> tensors = {
      {"f32", at::randn({3, 4})},
      {"f16", at::randn({5}).to(at::kHalf)},
      {"bf16", at::randn({2, 2, 2}).to(at::kBFloat16)},
      {"i64", at::arange(7, at::kLong)},
      {"scalar", at::tensor(3.5f).reshape({})},
      {"empty", at::zeros({0, 3})},
  };
  lethe::io::save_safetensors(dir / "a.safetensors", tensors, {{"objective", "siss"}, {"steps", "10"}});
  auto file = SafetensorsFile::open(dir / "a.safetensors");
  EXPECT_EQ(file.metadata().at("objective"), "siss");
  EXPECT_EQ(file.metadata().at("steps"), "10");
  ASSERT_EQ(file.names().size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    at::Tensor loaded = file.tensor(name);
    EXPECT_EQ(loaded.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_EQ(loaded.sizes(), tensor.sizes()) << name;
    EXPECT_TRUE(at::equal(loaded, tensor)) << name;
  }
}

TEST(Safetensors, LoadedTensorsAreWritableWithoutTouchingTheFile) {
  TempDir dir;
  lethe::io::save_safetensors(dir / "a.safetensors", {{"x", at::ones({4})}});
  {
    auto file = SafetensorsFile::open(dir / "a.safetensors");
    file.tensor("x").mul_(5);
  }
  auto again = SafetensorsFile::open(dir / "a.safetensors");
  EXPECT_TRUE(at::equal(again.tensor("x"), at::ones({4})));
}

TEST(Safetensors, TensorsOutliveTheFileObject) {
  TempDir dir;
  lethe::io::save_safetensors(dir / "a.safetensors", {{"x", at::arange(6, at::kFloat)}});
  at::Tensor kept;
  { kept = SafetensorsFile::open(dir / "a.safetensors").tensor("x"); }
  EXPECT_TRUE(at::equal(kept, at::arange(6, at::kFloat)));
}

TEST(Safetensors, HeaderIsPaddedToEightBytes) {
  TempDir dir;
  lethe::io::save_safetensors(dir / "a.safetensors", {{"abc", at::ones({1})}});
  std::string bytes = lethe::io::read_file(dir / "a.safetensors");
  uint64_t length = 0;
  for (int i = 7; i >= 0; --i) length = (length << 8) | static_cast<uint8_t>(bytes[i]);
  EXPECT_EQ(length % 8, 0u);
}

TEST(Safetensors, MalformedTooShort) {
  TempDir dir;
  lethe::io::write_file_atomic(dir / "s.safetensors", std::string("abc"));
  expect_error([&] { SafetensorsFile::open(dir / "s.safetensors"); }, {"s.safetensors", "too short"});
}

TEST(Safetensors, MalformedHeaderLengthPastEndOfFile) {
  TempDir dir;
  write_raw(dir / "h.safetensors", "{}", "", 4096);
  expect_error([&] { SafetensorsFile::open(dir / "h.safetensors"); },
               {"h.safetensors", "header length 4096 exceeds the file size"});
}

TEST(Safetensors, MalformedNonJsonHeader) {
  TempDir dir;
  write_raw(dir / "j.safetensors", "{not json", "");
  expect_error([&] { SafetensorsFile::open(dir / "j.safetensors"); }, {"j.safetensors", "header: invalid JSON at line 1"});
}

TEST(Safetensors, MalformedHeaderNotAnObject) {
  TempDir dir;
  write_raw(dir / "j.safetensors", "[1, 2]", "");
  expect_error([&] { SafetensorsFile::open(dir / "j.safetensors"); }, {"must be a JSON object"});
}

TEST(Safetensors, MalformedUnknownDtype) {
  TempDir dir;
  write_raw(dir / "d.safetensors", R"({"x":{"dtype":"F128","shape":[1],"data_offsets":[0,16]}})", std::string(16, '\0'));
  expect_error([&] { SafetensorsFile::open(dir / "d.safetensors"); },
               {"d.safetensors", "tensor 'x'", "unknown dtype 'F128'", "F32"});
}

TEST(Safetensors, MalformedShapeOffsetDisagreement) {
  TempDir dir;
  write_raw(dir / "m.safetensors", R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", std::string(8, '\0'));
  expect_error([&] { SafetensorsFile::open(dir / "m.safetensors"); },
               {"m.safetensors", "tensor 'x'", "needs 12 bytes", "span 8"});
}

TEST(Safetensors, MalformedOverlappingOffsets) {
  TempDir dir;
  write_raw(dir / "o.safetensors",
            R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
            std::string(12, '\0'));
  expect_error([&] { SafetensorsFile::open(dir / "o.safetensors"); }, {"o.safetensors", "overlap", "'a'"});
}

TEST(Safetensors, MalformedOutOfRangeOffsets) {
  TempDir dir;
  write_raw(dir / "r.safetensors", R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", std::string(8, '\0'));
  expect_error([&] { SafetensorsFile::open(dir / "r.safetensors"); },
               {"r.safetensors", "tensor 'x'", "out of range", "only 8 bytes"});
}

TEST(Safetensors, MalformedReversedOffsets) {
  TempDir dir;
  write_raw(dir / "r.safetensors", R"({"x":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", std::string(4, '\0'));
  expect_error([&] { SafetensorsFile::open(dir / "r.safetensors"); }, {"out of range", "begin after end"});
}

TEST(Safetensors, MalformedTruncatedData) {
  TempDir dir;
  lethe::io::save_safetensors(dir / "t.safetensors", {{"x", at::ones({64})}});
  std::string bytes = lethe::io::read_file(dir / "t.safetensors");
  lethe::io::write_file_atomic(dir / "t.safetensors", bytes.substr(0, bytes.size() - 10));
  expect_error([&] { SafetensorsFile::open(dir / "t.safetensors"); }, {"t.safetensors", "truncated"});
}

TEST(Safetensors, MalformedGapBetweenTensors) {
  TempDir dir;
  write_raw(dir / "g.safetensors",
            R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"b":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}})",
            std::string(6, '\0'));
  expect_error([&] { SafetensorsFile::open(dir / "g.safetensors"); }, {"gap of 2 bytes before tensor 'b'"});
}

TEST(Safetensors, MalformedTrailingBytes) {
  TempDir dir;
  write_raw(dir / "x.safetensors", R"({"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}})", std::string(5, '\0'));
  expect_error([&] { SafetensorsFile::open(dir / "x.safetensors"); }, {"trailing bytes"});
}

TEST(Safetensors, MalformedMetadataValueNotString) {
  TempDir dir;
  write_raw(dir / "x.safetensors", R"({"__metadata__":{"steps":10}})", "");
  expect_error([&] { SafetensorsFile::open(dir / "x.safetensors"); }, {"__metadata__ value of 'steps'"});
}

TEST(Safetensors, MalformedNegativeShape) {
  TempDir dir;
  write_raw(dir / "x.safetensors", R"({"a":{"dtype":"U8","shape":[-2],"data_offsets":[0,2]}})", std::string(2, '\0'));
  expect_error([&] { SafetensorsFile::open(dir / "x.safetensors"); }, {"non-negative"});
}

TEST(Safetensors, MissingFileNamesThePath) {
  expect_error([&] { SafetensorsFile::open("/nonexistent/model.safetensors"); }, {"/nonexistent/model.safetensors", "cannot open"});
}

TEST(Safetensors, UnknownTensorNameIsAnError) {
  TempDir dir;
  lethe::io::save_safetensors(dir / "a.safetensors", {{"x", at::ones({1})}});
  auto file = SafetensorsFile::open(dir / "a.safetensors");
  expect_error([&] { file.tensor("y"); }, {"no tensor named 'y'"});
}

TEST(Safetensors, ReservedNameIsRejectedOnWriteAndNothingIsWritten) {
  TempDir dir;
  expect_error([&] { lethe::io::save_safetensors(dir / "a.safetensors", {{"__metadata__", at::ones({1})}}); },
               {"invalid tensor name '__metadata__'"});
  EXPECT_FALSE(std::filesystem::exists(dir / "a.safetensors"));
}
