// SHA-256 digests (OpenSSL) of files and byte strings, as lower-case hex: what model cards,
// output metadata ("source model hash") and `sha256sum` agree on.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace lethe::io {

std::string sha256_hex(std::string_view bytes);
std::string sha256_file(const std::filesystem::path& path);

}  // namespace lethe::io
