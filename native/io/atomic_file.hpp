// Whole-file reads and atomic writes (write a temporary file beside the target, flush it
// to disk, then rename over the target), so a crash never leaves a half-written file.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

namespace lethe::io {

// Reads a whole file; throws lethe::Error naming the file when it cannot be read.
std::string read_file(const std::filesystem::path& path);

// Writes `bytes` to `path` atomically. Parent directories are created.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes);

// Streams chunks to a temporary file through `write(chunk)` calls made by `producer`,
// then renames it over `path`. If `producer` throws, the temporary file is removed and
// the target is left untouched.
using ChunkWriter = std::function<void(const void* data, std::size_t size)>;
void write_file_atomic(const std::filesystem::path& path,
                       const std::function<void(const ChunkWriter&)>& producer);

}  // namespace lethe::io
