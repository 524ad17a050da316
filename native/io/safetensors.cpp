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
    const int error = errno;  // before close() can change it
    ::close(fd);
    throw Error(str(where, ": cannot stat: ", std::strerror(error)));
  }
  if (S_ISDIR(status.st_mode)) {
    ::close(fd);
    throw Error(str(where, ": is a folder, expected a .safetensors file"));
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
  const int map_error = errno;  // before close() can change it
  ::close(fd);
  check(mapping->address != MAP_FAILED, where, ": cannot map: ", std::strerror(map_error));
  file.mapping_ = mapping;
  const auto* bytes = static_cast<const uint8_t*>(mapping->address);
  SafetensorsHeader header = parse_safetensors_header(bytes, file_size, where);
  for (const auto& [name, entry] : header.entries)
    scalar_type_from_safetensors(entry.dtype, str(where, ": tensor '", name, "'"));  // a dtype torch can hold
  file.data_ = bytes + header.data_offset;
  file.metadata_ = std::move(header.metadata);
  file.entries_ = std::move(header.entries);
  file.names_ = std::move(header.names);
  return file;
}

const std::string& SafetensorsFile::metadata_value(const std::string& key, const std::string& what) const {
  auto found = metadata_.find(key);
  check(found != metadata_.end(), "safetensors '", path_.string(), "': metadata key '", key, "' is missing (expected ",
        what, ")");
  return found->second;
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
                      const Metadata& metadata, WriteMode mode) {
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
  }, mode);
}


}  // namespace lethe::io
