#include "io/atomic_file.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace lethe::io {
namespace fs = std::filesystem;

FileExists::FileExists(const fs::path& target)
    : Error(str("'", target.string(), "' already exists (nothing is overwritten)")), path(target) {}

std::string read_file(const fs::path& path) {
  std::error_code error;
  check(!fs::is_directory(path, error), "cannot read file '", path.string(), "': it is a folder, expected a file");
  std::ifstream in(path, std::ios::binary);
  check(in.good(), "cannot read file '", path.string(), "': ", std::strerror(errno));
  std::ostringstream buffer;
  buffer << in.rdbuf();
  check(!in.bad(), "error while reading file '", path.string(), "'");
  return buffer.str();
}

namespace {

constexpr const char* kLockFileName = ".lethe.lock";  // FolderLock's file

// A failed system call's error: `error` is errno as the caller read it right after the call
// (inside one call to check, the message's arguments may be evaluated before the call itself,
// and building them may change errno).
[[noreturn]] void fail(const std::string& what, int error) { throw Error(str(what, ": ", std::strerror(error))); }

fs::path temporary_beside(const fs::path& target) {
  static std::atomic<std::uint64_t> counter{0};
  fs::path name = str(".", target.filename().string(), ".tmp-", ::getpid(), "-", counter++);
  return target.parent_path() / name;
}

class TemporaryFile {
 public:
  explicit TemporaryFile(const fs::path& target) : target_(target), path_(temporary_beside(target)) {
    if (!target.parent_path().empty()) make_folder(target.parent_path(), str("writing '", target.string(), "'"));
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
  void commit(WriteMode mode) {
    if (::fsync(fd_) != 0) {
      const int error = errno;
      fail(str("cannot flush '", target_.string(), "'"), error);
    }
    const int closed = ::close(fd_), close_error = errno;
    fd_ = -1;
    if (closed != 0) fail(str("cannot close '", target_.string(), "'"), close_error);
    if (mode == WriteMode::replace) {
      if (::rename(path_.c_str(), target_.c_str()) != 0) {
        const int error = errno;
        fail(str("cannot rename '", path_.string(), "' to '", target_.string(), "'"), error);
      }
      committed_ = true;
      return;
    }
    // link() fails with EEXIST when the name is taken: the exclusive, complete-or-absent write.
    if (::link(path_.c_str(), target_.c_str()) != 0) {
      const int error = errno;
      if (error == EEXIST) throw FileExists(target_);
      fail(str("cannot create '", target_.string(), "'"), error);
    }
    // The temporary name is removed by the destructor (committed_ stays false).
  }

 private:
  fs::path target_;
  fs::path path_;
  int fd_ = -1;
  bool committed_ = false;
};

}  // namespace

void write_file_atomic(const fs::path& path, const std::function<void(const ChunkWriter&)>& producer, WriteMode mode) {
  if (mode == WriteMode::exclusive && fs::exists(fs::symlink_status(path))) throw FileExists(path);  // early out
  TemporaryFile file(path);
  producer([&](const void* data, std::size_t size) { file.write(data, size); });
  file.commit(mode);
}

void write_file_atomic(const fs::path& path, std::string_view bytes, WriteMode mode) {
  write_file_atomic(path, [&](const ChunkWriter& write) { write(bytes.data(), bytes.size()); }, mode);
}

void make_folder(const fs::path& folder, const std::string& where) {
  std::error_code error;
  const fs::file_status status = fs::status(folder, error);
  check(!fs::exists(status) || fs::is_directory(status), where, ": '", folder.string(), "' is a file, expected a folder");
  if (fs::is_directory(status)) return;
  fs::create_directories(folder, error);
  // A part of the path that is a file, a missing permission, a full disk: the system's reason.
  check(!error, where, ": cannot create folder '", folder.string(), "': ", error.message());
}

std::string first_entry(const fs::path& folder) {
  std::error_code error;
  std::string first;
  for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
    const std::string name = it->path().filename().string();
    if (name != kLockFileName && (first.empty() || name < first)) first = name;
  }
  return first;
}

void require_empty_folder(const fs::path& folder, const std::string& what, const std::string& instead) {
  const std::string entry = first_entry(folder);
  check(entry.empty(), what, " '", folder.string(), "' already holds '", entry, "' and no Lethe run; ", instead,
        " (nothing is overwritten)");
}

bool claim_directory(const fs::path& path) {
  if (!path.parent_path().empty()) make_folder(path.parent_path(), str("creating '", path.string(), "'"));
  if (::mkdir(path.c_str(), 0755) == 0) return true;
  const int error = errno;
  check(error == EEXIST, "cannot create folder '", path.string(), "': ", std::strerror(error));
  return false;
}

FolderLock::FolderLock(const fs::path& folder) {
  make_folder(folder, "locking the output folder");
  const fs::path file = folder / kLockFileName;
  fd_ = ::open(file.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  check(fd_ >= 0, "cannot open lock file '", file.string(), "': ", std::strerror(errno));
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    ::close(fd_);
    fd_ = -1;
    check(error == EWOULDBLOCK, "cannot lock '", file.string(), "': ", std::strerror(error));
  }
}

FolderLock::~FolderLock() { release(); }

FolderLock::FolderLock(FolderLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }

FolderLock& FolderLock::operator=(FolderLock&& other) noexcept {
  if (this != &other) {
    release();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void FolderLock::release() {
  if (fd_ >= 0) ::close(fd_);  // closing the descriptor drops the flock
  fd_ = -1;
}

}  // namespace lethe::io
