// Whole-file reads and atomic writes (write a temporary file beside the target, flush it
// to disk, then rename it over the target, or link it to a name that must not exist yet),
// so a crash never leaves a half-written file and an exclusive write never replaces one.
// Also the two ways a run claims its place: a folder made exclusively (mkdir), and an
// advisory lock (flock) that the kernel releases when the process dies, however it dies.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "core/error.hpp"

namespace lethe::io {

// Reads a whole file; throws lethe::Error naming the file when it cannot be read (a
// folder where a file is expected says so).
std::string read_file(const std::filesystem::path& path);

// replace: the target is replaced atomically if it exists. exclusive: the write fails with
// FileExists if the target exists (checked atomically: two writers never both succeed).
enum class WriteMode { replace, exclusive };

class FileExists : public Error {
 public:
  explicit FileExists(const std::filesystem::path& path);
  std::filesystem::path path;
};

// Writes `bytes` to `path` atomically. Parent directories are created.
void write_file_atomic(const std::filesystem::path& path, std::string_view bytes, WriteMode mode = WriteMode::replace);

// Streams chunks to a temporary file through `write(chunk)` calls made by `producer`,
// then moves it to `path`. If `producer` throws, the temporary file is removed and the
// target is left untouched.
using ChunkWriter = std::function<void(const void* data, std::size_t size)>;
void write_file_atomic(const std::filesystem::path& path, const std::function<void(const ChunkWriter&)>& producer,
                       WriteMode mode = WriteMode::replace);

// Creates `path` (its parents as needed) and returns true if this call made it; false if it
// existed already. Atomic: of two processes claiming one name, exactly one gets true.
bool claim_directory(const std::filesystem::path& path);

// Creates `folder` and its missing parents. A part that exists as a file, or a folder that
// cannot be made, is an error naming `where`, the folder and the system's reason.
void make_folder(const std::filesystem::path& folder, const std::string& where);

// The first entry of `folder` by name other than Lethe's lock file, or "" when there is none
// (or no folder): a folder that holds anything else is not Lethe's to start a new run in.
std::string first_entry(const std::filesystem::path& folder);

// Refuses to start a new run in `folder` when it holds anything (first_entry): the error names
// `what` (e.g. "run folder"), the folder and what it holds, and says what to do `instead`.
void require_empty_folder(const std::filesystem::path& folder, const std::string& what, const std::string& instead);

// An exclusive advisory lock on `<folder>/.lethe.lock` (flock). The kernel drops it when the
// holder exits, also on kill -9, so a lock that can be taken means no live process holds it.
class FolderLock {
 public:
  FolderLock() = default;
  // Tries to lock `folder` (created if missing); check held() for the result.
  explicit FolderLock(const std::filesystem::path& folder);
  ~FolderLock();
  FolderLock(FolderLock&& other) noexcept;
  FolderLock& operator=(FolderLock&& other) noexcept;
  FolderLock(const FolderLock&) = delete;
  FolderLock& operator=(const FolderLock&) = delete;
  bool held() const { return fd_ >= 0; }
  void release();

 private:
  int fd_ = -1;
};

}  // namespace lethe::io
