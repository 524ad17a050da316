#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.hpp"

namespace lethe::io {
namespace fs = std::filesystem;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read file '", path.string(), "': ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  check(!in.bad(), "error while reading file '", path.string(), "'");
  return buffer.str();
}

namespace {

fs::path temporary_beside(const fs::path& target) {
  static std::atomic<std::uint64_t> counter{0};
  fs::path name = str(".", target.filename().string(), ".tmp-", ::getpid(), "-", counter++);
  return target.parent_path() / name;
}

class TemporaryFile {
 public:
  explicit TemporaryFile(const fs::path& target) : target_(target), path_(temporary_beside(target)) {
    if (!target.parent_path().empty()) fs::create_directories(target.parent_path());
    fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    check(fd_ >= 0, "cannot create temporary file '", path_.string(), "' for '", target.string(),
          "': ", std::strerror(errno));
  }
  ~TemporaryFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) {
      std::error_code ignored;
      fs::remove(path_, ignored);
    }
  }
  void write(const void* data, std::size_t size) {
    const char* cursor = static_cast<const char*>(data);
    while (size > 0) {
      ssize_t written = ::write(fd_, cursor, size);
      if (written < 0 && errno == EINTR) continue;
      check(written > 0, "cannot write '", target_.string(), "': ", std::strerror(errno));
      cursor += written;
      size -= static_cast<std::size_t>(written);
    }
  }
  void commit() {
    check(::fsync(fd_) == 0, "cannot flush '", target_.string(), "': ", std::strerror(errno));
    check(::close(fd_) == 0, "cannot close '", target_.string(), "': ", std::strerror(errno));
    fd_ = -1;
    check(::rename(path_.c_str(), target_.c_str()) == 0, "cannot rename '", path_.string(),
          "' to '", target_.string(), "': ", std::strerror(errno));
    committed_ = true;
  }

 private:
  fs::path target_;
  fs::path path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_file_atomic(const fs::path& path, const std::function<void(const ChunkWriter&)>& producer) {
  TemporaryFile file(path);
  producer([&](const void* data, std::size_t size) { file.write(data, size); });
  file.commit();
}

void write_file_atomic(const fs::path& path, std::string_view bytes) {
  write_file_atomic(path, [&](const ChunkWriter& write) { write(bytes.data(), bytes.size()); });
}

}  // namespace lethe::io
