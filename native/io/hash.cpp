#include "io/hash.hpp"

#include <openssl/evp.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <vector>

#include "core/error.hpp"

namespace lethe::io {

namespace {

class Sha256 {
 public:
  Sha256() : context_(EVP_MD_CTX_new(), EVP_MD_CTX_free) {
    check(context_ && EVP_DigestInit_ex(context_.get(), EVP_sha256(), nullptr) == 1, "sha256: OpenSSL init failed");
  }
  void update(const void* data, size_t size) {
    check(EVP_DigestUpdate(context_.get(), data, size) == 1, "sha256: OpenSSL update failed");
  }
  std::string hex() {
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

 private:
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context_;
};

}  // namespace

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
