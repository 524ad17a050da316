#include "io/safetensors_header.hpp"

#include <algorithm>
#include <limits>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/json_config.hpp"

namespace lethe::io {

namespace {

const std::vector<std::pair<std::string, uint64_t>>& dtype_sizes() {
  static const std::vector<std::pair<std::string, uint64_t>> table = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4},     {"I16", 2},     {"I8", 1},
      {"U8", 1},  {"BOOL", 1}, {"U16", 2}, {"U32", 4}, {"U64", 8}, {"F8_E4M3", 1}, {"F8_E5M2", 1},
  };
  return table;
}

bool is_non_negative_integer(const json& value) {
  return value.is_number_unsigned() || (value.is_number_integer() && value.get<int64_t>() >= 0);
}

}  // namespace

std::vector<std::string> safetensors_dtype_names() {
  std::vector<std::string> names;
  for (const auto& [name, size] : dtype_sizes()) names.push_back(name);
  return names;
}

uint64_t safetensors_dtype_size(const std::string& name, const std::string& where) {
  for (const auto& [known, size] : dtype_sizes())
    if (known == name) return size;
  throw Error(str(where, ": unknown dtype '", name, "', expected one of ", join(safetensors_dtype_names())));
}

SafetensorsHeader parse_safetensors_header(const uint8_t* bytes, uint64_t file_size, const std::string& where) {
  check(file_size >= 8, where, ": file is ", file_size, " bytes, too short for the 8-byte header length");
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  check(header_size <= file_size - 8, where, ": header length ", header_size, " exceeds the file size (", file_size,
        " bytes, ", file_size - 8, " after the length field)");
  check(header_size <= kMaxSafetensorsHeaderBytes, where, ": header length ", header_size, " exceeds the limit of ",
        kMaxSafetensorsHeaderBytes, " bytes");
  SafetensorsHeader out;
  out.data_offset = 8 + header_size;
  const uint64_t data_size = file_size - out.data_offset;

  const json header = parse_json(std::string(reinterpret_cast<const char*>(bytes + 8), header_size), where + " header");
  check(header.is_object(), where, ": header must be a JSON object, got ", header.type_name());

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& value = it.value();
    if (name == "__metadata__") {
      check(value.is_object(), where, ": __metadata__ must be an object of strings, got ", value.type_name());
      for (auto m = value.begin(); m != value.end(); ++m) {
        check(m.value().is_string(), where, ": __metadata__ value of '", m.key(), "' must be a string, got ",
              m.value().type_name());
        out.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tensor_where = str(where, ": tensor '", name, "'");
    check(!name.empty(), where, ": a tensor has an empty name");
    check(value.is_object(), tensor_where, ": entry must be an object, got ", value.type_name());
    for (auto field = value.begin(); field != value.end(); ++field)
      check(field.key() == "dtype" || field.key() == "shape" || field.key() == "data_offsets", tensor_where,
            ": unknown field '", field.key(), "', expected dtype, shape, data_offsets");
    for (const auto& [field, type] : {std::pair{"dtype", "a string"}, std::pair{"shape", "an array"}}) {
      check(value.contains(field), tensor_where, ": missing field '", field, "'");
      const bool fits = std::string(field) == "dtype" ? value[field].is_string() : value[field].is_array();
      check(fits, tensor_where, ": field '", field, "': expected ", type, ", got ", value[field].type_name());
    }
    check(value.contains("data_offsets") && value["data_offsets"].is_array() && value["data_offsets"].size() == 2,
          tensor_where, ": 'data_offsets' must be an array of 2 integers");

    TensorEntry entry;
    entry.dtype = value["dtype"].get<std::string>();
    const uint64_t element_size = safetensors_dtype_size(entry.dtype, tensor_where);
    // Counts stay below 2^63 bytes: torch indexes with int64, and a count that overflows
    // could otherwise wrap around to match the offsets.
    constexpr uint64_t kLimit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
    uint64_t element_count = 1;
    for (const json& dim : value["shape"]) {
      check(is_non_negative_integer(dim), tensor_where, ": shape entries must be non-negative integers, got ", dim.dump());
      const uint64_t extent = dim.get<uint64_t>();
      check(extent <= kLimit && (extent == 0 || element_count <= kLimit / extent), tensor_where, ": shape ",
            value["shape"].dump(), " has more elements than a tensor can hold");
      element_count *= extent;
      entry.shape.push_back(static_cast<int64_t>(extent));
    }
    check(element_count <= kLimit / element_size, tensor_where, ": shape ", value["shape"].dump(), " of ", entry.dtype,
          " needs more bytes than a tensor can hold");
    for (const json& offset : value["data_offsets"])
      check(is_non_negative_integer(offset), tensor_where, ": data_offsets must be non-negative integers, got ",
            offset.dump());
    entry.begin = value["data_offsets"][0].get<uint64_t>();
    entry.end = value["data_offsets"][1].get<uint64_t>();
    check(entry.begin <= entry.end, tensor_where, ": data_offsets [", entry.begin, ", ", entry.end,
          "] are out of range (begin after end)");
    check(entry.end <= data_size, tensor_where, ": data_offsets [", entry.begin, ", ", entry.end,
          "] are out of range: the data section has only ", data_size, " bytes (file truncated?)");
    const uint64_t expected_bytes = element_count * element_size;
    check(entry.end - entry.begin == expected_bytes, tensor_where, ": shape ", value["shape"].dump(), " of ",
          entry.dtype, " needs ", expected_bytes, " bytes but data_offsets [", entry.begin, ", ", entry.end, "] span ",
          entry.end - entry.begin);
    out.entries.emplace(name, std::move(entry));
  }

  // The data section must be covered exactly: no overlaps, no gaps, nothing left over.
  std::vector<std::string> order;
  for (const auto& [name, entry] : out.entries) order.push_back(name);
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    const auto& ea = out.entries.at(a);
    const auto& eb = out.entries.at(b);
    return std::tie(ea.begin, ea.end) < std::tie(eb.begin, eb.end);
  });
  uint64_t cursor = 0;
  std::string previous;
  for (const std::string& name : order) {
    const TensorEntry& entry = out.entries.at(name);
    check(entry.begin >= cursor, where, ": tensor '", name, "' data_offsets [", entry.begin, ", ", entry.end,
          "] overlap tensor '", previous, "' (which ends at ", cursor, ")");
    check(entry.begin == cursor, where, ": gap of ", entry.begin - cursor, " bytes before tensor '", name,
          "' (data_offsets must cover the data section without holes)");
    cursor = entry.end;
    previous = name;
  }
  check(cursor == data_size, where, ": data section has ", data_size, " bytes but the tensors cover ", cursor,
        cursor < data_size ? " (trailing bytes)" : "");
  out.names = std::move(order);
  return out;
}

}  // namespace lethe::io
