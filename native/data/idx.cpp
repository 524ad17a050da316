#include "data/idx.hpp"

#include <zlib.h>

#include <cstdlib>
#include <cstring>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::data {
namespace fs = std::filesystem;

namespace {

// Reads the whole (possibly gzip-compressed) file; zlib passes plain files through.
std::string read_maybe_gzip(const fs::path& path) {
  gzFile file = gzopen(path.c_str(), "rb");
  check(file != nullptr, "IDX file '", path.string(), "': cannot open");
  std::string out;
  char buffer[1 << 16];
  int count = 0;
  while ((count = gzread(file, buffer, sizeof(buffer))) > 0) out.append(buffer, count);
  int error = 0;
  const char* message = gzerror(file, &error);
  gzclose(file);
  check(count == 0 && (error == Z_OK || error == Z_STREAM_END), "IDX file '", path.string(),
        "': read error: ", message);
  return out;
}

}  // namespace

at::Tensor read_idx(const fs::path& path) {
  const std::string bytes = read_maybe_gzip(path);
  const std::string where = str("IDX file '", path.string(), "'");
  check(bytes.size() >= 4, where, ": ", bytes.size(), " bytes, too short for the 4-byte magic");
  const auto* data = reinterpret_cast<const uint8_t*>(bytes.data());
  check(data[0] == 0 && data[1] == 0, where, ": bad magic (first two bytes must be 0)");
  check(data[2] == 0x08, where, ": element type 0x", std::hex, int(data[2]), " is not supported, expected 0x08 (unsigned byte)");
  const int dims = data[3];
  check(dims >= 1 && dims <= 4, where, ": ", dims, " dimensions, expected 1 to 4");
  check(bytes.size() >= 4 + 4 * static_cast<size_t>(dims), where, ": truncated dimension list");
  std::vector<int64_t> shape;
  uint64_t count = 1;
  for (int d = 0; d < dims; ++d) {
    const uint8_t* p = data + 4 + 4 * d;
    const uint32_t extent = (uint32_t(p[0]) << 24) | (uint32_t(p[1]) << 16) | (uint32_t(p[2]) << 8) | p[3];
    shape.push_back(extent);
    count *= extent;
  }
  const size_t header = 4 + 4 * static_cast<size_t>(dims);
  check(bytes.size() - header == count, where, ": truncated or oversized data: dimensions need ", count,
        " bytes, file has ", bytes.size() - header);
  at::Tensor out = at::empty(shape, at::kByte);
  std::memcpy(out.data_ptr(), data + header, count);
  return out;
}

fs::path fashion_mnist_dir() {
  if (const char* override_dir = std::getenv("LETHE_FASHION_MNIST")) return override_dir;
  return "/usr/share/datasets/fashion-mnist";
}

LabelledImages load_fashion_mnist(const std::string& split) {
  check(split == "train" || split == "test", "Fashion-MNIST split must be 'train' or 'test', got '", split, "'");
  const std::string prefix = split == "train" ? "train" : "t10k";
  const fs::path dir = fashion_mnist_dir();
  const fs::path images_file = dir / (prefix + "-images-idx3-ubyte.gz");
  const fs::path labels_file = dir / (prefix + "-labels-idx1-ubyte.gz");
  check(fs::exists(images_file) && fs::exists(labels_file), "Fashion-MNIST ", split, " files not found in '",
        dir.string(), "' (install the Debian package dataset-fashion-mnist, run `make setup`, or set "
        "LETHE_FASHION_MNIST)");
  at::Tensor images = read_idx(images_file);
  at::Tensor labels = read_idx(labels_file);
  check(images.dim() == 3 && labels.dim() == 1 && images.size(0) == labels.size(0), "Fashion-MNIST ", split,
        ": images ", images.sizes(), " and labels ", labels.sizes(), " disagree");
  return {images.unsqueeze(1).contiguous(), labels.to(at::kLong)};
}

const std::vector<std::string>& fashion_mnist_classes() {
  static const std::vector<std::string> names = {"tshirt", "trouser", "pullover", "dress", "coat",
                                                 "sandal", "shirt",   "sneaker",  "bag",   "ankle_boot"};
  return names;
}

}  // namespace lethe::data
