// SHA-256 digests (OpenSSL) of files, byte strings and tensors, as lower-case hex: what model
// cards, output metadata ("source model hash"), run identities and `sha256sum` agree on.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>

#include <ATen/core/Tensor.h>

struct evp_md_ctx_st;

namespace lethe::io {

// An incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, size_t size);
  void update(std::string_view text);
  // A tensor's dtype, shape and values (any device, layout or strides: hashed as its CPU
  // contiguous bytes), so equal tensors hash equal however they are stored.
  void update(const at::Tensor& tensor);
  std::string hex();  // the digest; the hasher is spent afterwards

 private:
  std::unique_ptr<evp_md_ctx_st, void (*)(evp_md_ctx_st*)> context_;
};

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);

}  // namespace lethe::io
