// Shared helpers for the native tests: temporary folders, environment variables and
// error-message matching.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <gtest/gtest.h>

#include "models/unet.hpp"
#include "models/unet_config.hpp"

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

// A UNet small enough for a test to train in milliseconds: 1 channel, widths 8 and 16,
// cross-attention on the second level with 8-dimensional contexts.
models::UNetConfig tiny_unet_config();

// A UNet of `config` initialised from seed 3, then every weight moved by scale * N(0, 1) noise
// drawn from `noise_seed`: away from the initialisation's zero output layers, so every input
// (and every adapter) reaches the output.
models::UNet perturbed_unet(const models::UNetConfig& config, uint64_t noise_seed, double scale);

// Sets an environment variable for the scope ("" counts as not set where Lethe reads it), then
// restores what was there.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const std::string& value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    setenv(name, value.c_str(), 1);
  }
  ~ScopedEnv() {
    if (old_) setenv(name_, old_->c_str(), 1);
    else unsetenv(name_);
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  const char* name_;
  std::optional<std::string> old_;
};

// Runs torch's intra-op work on `threads` threads for the scope, then restores the count. ctest
// runs the tests one thread each (several test processes at once); a test of a kernel's threaded
// path asks for at least two with it.
class ScopedThreads {
 public:
  explicit ScopedThreads(int threads);
  ~ScopedThreads();
  ScopedThreads(const ScopedThreads&) = delete;
  ScopedThreads& operator=(const ScopedThreads&) = delete;

 private:
  int old_;
};

// Runs `body`, expects a lethe::Error whose message contains every fragment.
void expect_error(const std::function<void()>& body, const std::vector<std::string>& fragments);

}  // namespace lethe::testing
