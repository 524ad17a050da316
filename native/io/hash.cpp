#include "io/hash.hpp"

#include <algorithm>

#include <openssl/evp.h>

#include <cstdio>
#include <fstream>
#include <vector>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::io {

Sha256::Sha256() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
  check(context_ && EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) == 1, "sha256: OpenSSL init failed");
}

Sha256::~Sha256() = default;

void Sha256::update(const void* data, size_t size) {
  check(EVP_DigestUpdate(context_.get(), data, size) == 1, "sha256: OpenSSL update failed");
}

void Sha256::update(std::string_view text) {
  const uint64_t size = text.size();  // length-prefixed: ("ab", "c") and ("a", "bc") differ
  update(&size, sizeof(size));
  update(text.data(), text.size());
}

void Sha256::update(const at::Tensor& tensor) {
  if (!tensor.defined()) {
    update(std::string_view("undefined"));
    return;
  }
  update(std::string_view(c10::toString(tensor.scalar_type())));
  const uint64_t dims = static_cast<uint64_t>(tensor.dim());
  update(&dims, sizeof(dims));
  for (int64_t size : tensor.sizes()) update(&size, sizeof(size));
  if (tensor.numel() == 0) return;
  // The row-major bytes, a slab of rows at a time: an expanded view (a set's all-ones masks)
  // or a strided tensor never has to be materialised whole.
  const at::Tensor rows = tensor.dim() == 0 ? tensor.reshape({1}) : tensor;
  const int64_t row_bytes = rows.numel() / rows.size(0) * rows.element_size();
  const int64_t slab = std::max<int64_t>(1, (int64_t{16} << 20) / row_bytes);  // row_bytes >= 1: numel > 0
  for (int64_t first = 0; first < rows.size(0); first += slab) {
    const at::Tensor bytes =
        rows.narrow(0, first, std::min(slab, rows.size(0) - first)).detach().to(at::kCPU).contiguous();
    update(bytes.data_ptr(), static_cast<size_t>(bytes.numel()) * bytes.element_size());
  }
}

std::string Sha256::hex() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  check(EVP_DigestFinal_ex(context_.get(), digest, &length) == 1, "sha256: OpenSSL final failed");
  std::string out;
  char buffer[3];
  for (unsigned int i = 0; i < length; ++i) {
    std::snprintf(buffer, sizeof(buffer), "%02x", digest[i]);
    out += buffer;
  }
  return out;
}

std::string sha256_hex(std::string_view bytes) {
  Sha256 hash;
  hash.update(bytes.data(), bytes.size());
  return hash.hex();
}

std::string sha256_file(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read '", path.string(), "' to hash it");
  Sha256 hash;
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    if (in.gcount() > 0) hash.update(buffer.data(), static_cast<size_t>(in.gcount()));
  }
  return hash.hex();
}

}  // namespace lethe::io
