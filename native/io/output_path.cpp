#include "io/output_path.hpp"

#include <cstdio>

#include "core/error.hpp"
#include "io/atomic_file.hpp"
#include "io/hash.hpp"

namespace lethe::io {
namespace fs = std::filesystem;

namespace {

// The path with its longest existing prefix resolved through symbolic links (the rest
// appended lexically); `..` parts are refused before this is called.
fs::path resolved(const fs::path& path) {
  fs::path absolute = fs::absolute(path).lexically_normal();
  fs::path existing = absolute, rest;
  std::error_code error;
  while (!existing.empty() && !fs::exists(fs::symlink_status(existing, error))) {
    rest = existing.filename() / rest;
    if (existing == existing.parent_path()) break;
    existing = existing.parent_path();
  }
  fs::path real = fs::canonical(existing, error);
  if (error) real = existing;
  return (real / rest).lexically_normal();
}

bool is_under(const fs::path& path, const fs::path& root) {
  auto p = path.begin();
  for (auto r = root.begin(); r != root.end(); ++r, ++p) {
    if (r->empty()) continue;  // a trailing separator
    if (p == path.end() || *p != *r) return false;
  }
  return true;
}

}  // namespace

void check_inside(const fs::path& root, const fs::path& path, const std::string& where) {
  const fs::path real_root = resolved(root), real_path = resolved(path);
  check(is_under(real_path, real_root), where, ": '", path.string(), "' leads outside the output folder '",
        root.string(), "' (to '", real_path.string(), "'); Lethe writes only inside its output folder");
}

fs::path path_inside(const fs::path& root, const std::string& relative, const std::string& where) {
  const std::string expected = "expected a relative name inside the output folder '" + root.string() + "'";
  check(!relative.empty(), where, ": ", expected, ", got an empty name");
  check(relative.find('\0') == std::string::npos, where, ": ", expected, ", got a name with a NUL character");
  const fs::path given(relative);
  check(!given.is_absolute() && !given.has_root_name() && !given.has_root_directory(), where, ": ", expected,
        ", got the absolute path '", relative, "'");
  for (const fs::path& part : given)
    check(part != "..", where, ": ", expected, ", got '", relative, "' (a '..' part would leave it)");
  const fs::path path = root / given;
  check_inside(root, path, where);
  return path;
}

std::string file_name_part(const std::string& id) {
  std::string out;
  bool changed = id.empty();
  for (char c : id) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    out += keep ? c : '_';
    changed = changed || !keep;
  }
  if (out.size() > 64) {
    out.resize(64);
    changed = true;
  }
  if (changed) out += "-" + sha256_hex(id).substr(0, 8);
  return out;
}

fs::path claim_numbered_folder(const fs::path& root, const std::string& stem) {
  for (int index = 1;; ++index) {
    const fs::path folder = root / (index == 1 ? stem : str(stem, "-", index));
    check_inside(root, folder, "output folder");
    if (claim_directory(folder)) return folder;
  }
}

fs::path write_numbered_file(const fs::path& folder, const std::string& prefix, const std::string& suffix,
                             const std::string& where, const std::function<void(const fs::path&)>& write) {
  const fs::path base = path_inside(folder, prefix, where);
  for (int counter = 1;; ++counter) {
    char number[32];
    std::snprintf(number, sizeof(number), "_%05d_", counter);
    const fs::path path = base.parent_path() / (base.filename().string() + number + suffix);
    if (fs::exists(fs::symlink_status(path))) continue;
    try {
      write(path);
      return path;
    } catch (const FileExists&) {
      // another writer took this number between the check and the write: try the next
    }
  }
}

}  // namespace lethe::io
