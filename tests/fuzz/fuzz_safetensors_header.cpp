// libFuzzer target: the safetensors header reader (io/safetensors_header.hpp) on any bytes.
// It must either accept the header or throw lethe::Error; a crash, hang, sanitizer report or
// any other exception is a finding.
#include <cstddef>
#include <cstdint>

#include "core/error.hpp"
#include "io/safetensors_header.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto header = lethe::io::parse_safetensors_header(data, size, "fuzz.safetensors");
    // What readers rely on: every tensor lies inside the data section, in offset order.
    uint64_t cursor = header.data_offset;
    for (const auto& name : header.names) {
      const auto& entry = header.entries.at(name);
      if (header.data_offset + entry.begin != cursor || header.data_offset + entry.end > size) __builtin_trap();
      cursor = header.data_offset + entry.end;
    }
    if (cursor != size) __builtin_trap();
  } catch (const lethe::Error&) {
  }
  return 0;
}
