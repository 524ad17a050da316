// Shared helpers for the native tests: temporary folders and error-message matching.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include <gtest/gtest.h>

namespace lethe::testing {

// A fresh temporary directory, removed when the object goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

// Runs `body`, expects a lethe::Error whose message contains every fragment.
void expect_error(const std::function<void()>& body, const std::vector<std::string>& fragments);

}  // namespace lethe::testing
