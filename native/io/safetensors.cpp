#include "io/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "io/atomic_file.hpp"

namespace lethe::io {
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// The Python library refuses headers above 100 MB; so do we.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const std::vector<std::pair<std::string, at::ScalarType>>& dtype_table() {
  static const std::vector<std::pair<std::string, at::ScalarType>> table = {
      {"F64", at::kDouble},  {"F32", at::kFloat},     {"F16", at::kHalf},
      {"BF16", at::kBFloat16}, {"I64", at::kLong},    {"I32", at::kInt},
      {"I16", at::kShort},   {"I8", at::kChar},       {"U8", at::kByte},
      {"BOOL", at::kBool},   {"U16", at::kUInt16},    {"U32", at::kUInt32},
      {"U64", at::kUInt64},  {"F8_E4M3", at::kFloat8_e4m3fn}, {"F8_E5M2", at::kFloat8_e5m2},
  };
  return table;
}

std::vector<std::string> known_dtype_names() {
  std::vector<std::string> names;
  for (const auto& [name, type] : dtype_table()) names.push_back(name);
  return names;
}

}  // namespace

std::string safetensors_dtype_name(at::ScalarType type) {
  for (const auto& [name, known] : dtype_table())
    if (known == type) return name;
  throw Error(str("safetensors: torch dtype ", c10::toString(type), " cannot be stored; supported: ",
                  join(known_dtype_names())));
}

at::ScalarType scalar_type_from_safetensors(const std::string& name, const std::string& where) {
  for (const auto& [known, type] : dtype_table())
    if (known == name) return type;
  throw Error(str(where, ": unknown dtype '", name, "', expected one of ", join(known_dtype_names())));
}

struct SafetensorsFile::Mapping {
  void* address = nullptr;
  size_t size = 0;
  ~Mapping() {
    if (address != nullptr && address != MAP_FAILED) ::munmap(address, size);
  }
};

const TensorEntry& SafetensorsFile::entry(const std::string& name) const {
  auto found = entries_.find(name);
  check(found != entries_.end(), "safetensors '", path_.string(), "': no tensor named '", name, "'");
  return found->second;
}

SafetensorsFile SafetensorsFile::open(const fs::path& path) {
  const std::string where = str("safetensors '", path.string(), "'");
  SafetensorsFile file;
  file.path_ = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  check(fd >= 0, where, ": cannot open: ", std::strerror(errno));
  struct stat status {};
  if (::fstat(fd, &status) != 0) {
    ::close(fd);
    throw Error(str(where, ": cannot stat: ", std::strerror(errno)));
  }
  const uint64_t file_size = static_cast<uint64_t>(status.st_size);
  if (file_size < 8) {
    ::close(fd);
    throw Error(str(where, ": file is ", file_size, " bytes, too short for the 8-byte header length"));
  }
  auto mapping = std::make_shared<Mapping>();
  mapping->size = file_size;
  // Private copy-on-write mapping: tensors handed out may be modified without touching the file.
  mapping->address = ::mmap(nullptr, file_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ::close(fd);
  check(mapping->address != MAP_FAILED, where, ": cannot map: ", std::strerror(errno));
  file.mapping_ = mapping;
  const auto* bytes = static_cast<const uint8_t*>(mapping->address);

  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  check(header_size <= file_size - 8, where, ": header length ", header_size,
        " exceeds the file size (", file_size, " bytes, ", file_size - 8, " after the length field)");
  check(header_size <= kMaxHeaderBytes, where, ": header length ", header_size, " exceeds the limit of ",
        kMaxHeaderBytes, " bytes");
  const uint64_t data_size = file_size - 8 - header_size;
  file.data_ = bytes + 8 + header_size;

  json header;
  try {
    header = json::parse(reinterpret_cast<const char*>(bytes + 8),
                         reinterpret_cast<const char*>(bytes + 8 + header_size));
  } catch (const json::exception& e) {
    throw Error(str(where, ": header is not valid JSON (", e.what(), ")"));
  }
  check(header.is_object(), where, ": header must be a JSON object, got ", header.type_name());

  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const json& value = it.value();
    if (name == "__metadata__") {
      check(value.is_object(), where, ": __metadata__ must be an object of strings, got ", value.type_name());
      for (auto m = value.begin(); m != value.end(); ++m) {
        check(m.value().is_string(), where, ": __metadata__ value of '", m.key(), "' must be a string, got ",
              m.value().type_name());
        file.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string tensor_where = str(where, ": tensor '", name, "'");
    check(value.is_object(), tensor_where, ": entry must be an object, got ", value.type_name());
    for (auto field = value.begin(); field != value.end(); ++field)
      check(field.key() == "dtype" || field.key() == "shape" || field.key() == "data_offsets", tensor_where,
            ": unknown field '", field.key(), "', expected dtype, shape, data_offsets");
    check(value.contains("dtype") && value["dtype"].is_string(), tensor_where, ": missing string field 'dtype'");
    check(value.contains("shape") && value["shape"].is_array(), tensor_where, ": missing array field 'shape'");
    check(value.contains("data_offsets") && value["data_offsets"].is_array() && value["data_offsets"].size() == 2,
          tensor_where, ": 'data_offsets' must be an array of 2 integers");

    TensorEntry entry;
    entry.dtype = value["dtype"].get<std::string>();
    const at::ScalarType type = scalar_type_from_safetensors(entry.dtype, tensor_where);
    uint64_t element_count = 1;
    for (const json& dim : value["shape"]) {
      check(dim.is_number_unsigned() || (dim.is_number_integer() && dim.get<int64_t>() >= 0), tensor_where,
            ": shape entries must be non-negative integers, got ", dim.dump());
      const uint64_t extent = dim.get<uint64_t>();
      check(extent == 0 || element_count <= UINT64_MAX / extent, tensor_where, ": shape overflows");
      element_count *= extent;
      entry.shape.push_back(static_cast<int64_t>(extent));
    }
    for (const json& offset : value["data_offsets"])
      check(offset.is_number_unsigned() || (offset.is_number_integer() && offset.get<int64_t>() >= 0),
            tensor_where, ": data_offsets must be non-negative integers, got ", offset.dump());
    entry.begin = value["data_offsets"][0].get<uint64_t>();
    entry.end = value["data_offsets"][1].get<uint64_t>();
    check(entry.begin <= entry.end, tensor_where, ": data_offsets [", entry.begin, ", ", entry.end,
          "] are out of range (begin after end)");
    check(entry.end <= data_size, tensor_where, ": data_offsets [", entry.begin, ", ", entry.end,
          "] are out of range: the data section has only ", data_size, " bytes (file truncated?)");
    const uint64_t expected_bytes = element_count * c10::elementSize(type);
    check(entry.end - entry.begin == expected_bytes, tensor_where, ": shape ", value["shape"].dump(), " of ",
          entry.dtype, " needs ", expected_bytes, " bytes but data_offsets [", entry.begin, ", ", entry.end,
          "] span ", entry.end - entry.begin);
    file.entries_.emplace(name, std::move(entry));
  }

  // The data section must be covered exactly: no overlaps, no gaps, nothing left over.
  std::vector<std::string> order;
  for (const auto& [name, entry] : file.entries_) order.push_back(name);
  std::stable_sort(order.begin(), order.end(), [&](const std::string& a, const std::string& b) {
    const auto& ea = file.entries_.at(a);
    const auto& eb = file.entries_.at(b);
    return std::tie(ea.begin, ea.end) < std::tie(eb.begin, eb.end);
  });
  uint64_t cursor = 0;
  std::string previous;
  for (const std::string& name : order) {
    const TensorEntry& entry = file.entries_.at(name);
    check(entry.begin >= cursor, where, ": tensor '", name, "' data_offsets [", entry.begin, ", ", entry.end,
          "] overlap tensor '", previous, "' (which ends at ", cursor, ")");
    check(entry.begin == cursor, where, ": gap of ", entry.begin - cursor, " bytes before tensor '", name,
          "' (data_offsets must cover the data section without holes)");
    cursor = entry.end;
    previous = name;
  }
  check(cursor == data_size, where, ": data section has ", data_size, " bytes but the tensors cover ", cursor,
        cursor < data_size ? " (trailing bytes)" : "");
  file.names_ = std::move(order);
  return file;
}

at::Tensor SafetensorsFile::tensor(const std::string& name) const {
  const TensorEntry& info = entry(name);
  const at::ScalarType type = scalar_type_from_safetensors(info.dtype, name);
  auto* address = const_cast<uint8_t*>(data_ + info.begin);
  const auto options = at::TensorOptions().dtype(type).device(at::kCPU);
  if (reinterpret_cast<uintptr_t>(address) % c10::elementSize(type) != 0) {
    // Misaligned for its dtype: copy into an aligned buffer.
    at::Tensor copy = at::empty(info.shape, options);
    std::memcpy(copy.data_ptr(), address, info.end - info.begin);
    return copy;
  }
  std::shared_ptr<Mapping> keep_alive = mapping_;
  return at::from_blob(address, info.shape, [keep_alive](void*) mutable { keep_alive.reset(); }, options);
}

std::map<std::string, at::Tensor> SafetensorsFile::tensors() const {
  std::map<std::string, at::Tensor> out;
  for (const std::string& name : names_) out.emplace(name, tensor(name));
  return out;
}

void save_safetensors(const fs::path& path, const std::map<std::string, at::Tensor>& tensors,
                      const Metadata& metadata) {
  const std::string where = str("saving safetensors '", path.string(), "'");
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<at::Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    check(!name.empty() && name != "__metadata__", where, ": invalid tensor name '", name, "'");
    check(tensor.defined(), where, ": tensor '", name, "' is undefined");
    at::Tensor data = tensor.detach().to(at::kCPU).contiguous();
    const uint64_t bytes = static_cast<uint64_t>(data.numel()) * data.element_size();
    header[name] = {{"dtype", safetensors_dtype_name(data.scalar_type())},
                    {"shape", data.sizes().vec()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(std::move(data));
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keep the data section 8-byte aligned
  uint8_t length[8];
  uint64_t size = text.size();
  for (int i = 0; i < 8; ++i) length[i] = static_cast<uint8_t>(size >> (8 * i));
  write_file_atomic(path, [&](const ChunkWriter& write) {
    write(length, 8);
    write(text.data(), text.size());
    for (const at::Tensor& data : contiguous)
      if (data.numel() > 0) write(data.data_ptr(), static_cast<size_t>(data.numel()) * data.element_size());
  });
}


}  // namespace lethe::io
