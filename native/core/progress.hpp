// Progress reporting and cancellation for long work (training, sampling, scoring).
// The callback receives each update; to cancel, it throws (lethe::Cancelled from the CLI, or from
// the bridge when a Python callback returns False; ComfyUI's interrupt exception through the
// bridge). Work loops report once per step, so a cancel takes effect within one step, and they
// leave resumable state behind.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>

namespace lethe {

struct ProgressEvent {
  std::string stage;                    // "train", "sample", "score", ...
  int64_t step = 0;                     // steps done
  int64_t total = 0;
  double seconds_per_step = 0.0;        // running mean since the stage started
  double eta_seconds = 0.0;
  std::map<std::string, double> values; // loss terms and the like
};

using ProgressCallback = std::function<void(const ProgressEvent&)>;

class ProgressReporter {
 public:
  ProgressReporter(ProgressCallback callback, std::string stage, int64_t total, int64_t first_step = 0);
  // Reports `step` of `total`; computes timing. Throws whatever the callback throws.
  void update(int64_t step, const std::map<std::string, double>& values = {});
  double elapsed_seconds() const;

 private:
  ProgressCallback callback_;
  std::string stage_;
  int64_t total_;
  int64_t first_step_;
  std::chrono::steady_clock::time_point start_;
};

// Wall time of consecutive stages: each lap() returns the seconds since the previous lap (or
// since construction) and starts the next stage.
class StageClock {
 public:
  StageClock() : mark_(std::chrono::steady_clock::now()) {}
  double lap() {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - mark_).count();
    mark_ = now;
    return seconds;
  }

 private:
  std::chrono::steady_clock::time_point mark_;
};

}  // namespace lethe
