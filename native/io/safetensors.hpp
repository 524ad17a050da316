// The safetensors file format (https://github.com/huggingface/safetensors): an 8-byte
// little-endian header length N, N bytes of JSON header, then the raw tensor bytes.
//
// Reading memory-maps the file copy-on-write, validates the whole header before any
// tensor is touched, and hands out tensors that view the mapping (or copies when a
// tensor's bytes are not aligned for its dtype). Writing is atomic.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "io/atomic_file.hpp"
#include "io/safetensors_header.hpp"

namespace lethe::io {

class SafetensorsFile {
 public:
  // Maps and validates `path`. Throws lethe::Error naming the file and the problem for
  // any malformed file (truncation, header length past the end, bad JSON, unknown dtype,
  // shape/offset disagreement, overlapping, gapped or out-of-range offsets).
  static SafetensorsFile open(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return path_; }
  const Metadata& metadata() const { return metadata_; }
  // The metadata value of `key`; a missing key is an error naming the key, the file and
  // `what` the file was expected to be ("a Lethe model file").
  const std::string& metadata_value(const std::string& key, const std::string& what) const;
  // Tensor names in the order of their data offsets.
  const std::vector<std::string>& names() const { return names_; }
  bool contains(const std::string& name) const { return entries_.count(name) > 0; }
  const TensorEntry& entry(const std::string& name) const;
  // The tensor `name` on the CPU. It shares memory with the private mapping: writes to it
  // never reach the file.
  at::Tensor tensor(const std::string& name) const;
  std::map<std::string, at::Tensor> tensors() const;

 private:
  struct Mapping;
  std::filesystem::path path_;
  std::shared_ptr<Mapping> mapping_;
  const uint8_t* data_ = nullptr;  // start of the data section
  Metadata metadata_;
  std::map<std::string, TensorEntry> entries_;
  std::vector<std::string> names_;
};

// Writes tensors (any device and layout; stored contiguous, in name order) and string
// metadata to `path` atomically (exclusive: never replacing an existing file). Names must
// be non-empty; "__metadata__" is reserved.
void save_safetensors(const std::filesystem::path& path, const std::map<std::string, at::Tensor>& tensors,
                      const Metadata& metadata = {}, WriteMode mode = WriteMode::replace);

// The safetensors dtype name for a torch scalar type, and back. Throw for unsupported ones.
std::string safetensors_dtype_name(at::ScalarType type);
at::ScalarType scalar_type_from_safetensors(const std::string& name, const std::string& where);

}  // namespace lethe::io
