// The header of a safetensors file (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, then N bytes of JSON naming each tensor's dtype, shape and
// byte range in the data section that follows. Validated completely here, without torch,
// before any tensor is touched (and fuzzed: tests/fuzz/fuzz_safetensors_header.cpp).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace lethe::io {

using Metadata = std::map<std::string, std::string>;

struct TensorEntry {
  std::string dtype;            // safetensors dtype name: "F32", "BF16", "I64", ...
  std::vector<int64_t> shape;   // may be empty (a scalar)
  uint64_t begin = 0;           // byte offsets relative to the start of the data section
  uint64_t end = 0;
};

struct SafetensorsHeader {
  Metadata metadata;
  std::map<std::string, TensorEntry> entries;
  std::vector<std::string> names;  // in the order of their data offsets
  uint64_t data_offset = 0;        // where the data section starts in the file (8 + N)
};

// The Python library refuses headers above 100 MB; so do we.
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = 100'000'000;

// Validates the header of a file of `file_size` bytes, `bytes` being the whole file (or at
// least its first 8 + N bytes). Throws lethe::Error naming `where` and the problem for any
// malformed header: too short, header length past the end, bad JSON, unknown dtype, a shape
// whose element or byte count overflows, shape/offset disagreement, overlapping, gapped or
// out-of-range offsets.
SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t file_size, const std::string& where);

// Bytes per element of a safetensors dtype; throws for an unknown name, listing the known ones.
uint64_t safetensors_dtype_size(const std::string& name, const std::string& where);
std::vector<std::string> safetensors_dtype_names();

}  // namespace lethe::io
