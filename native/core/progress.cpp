#include "core/progress.hpp"

namespace lethe {

ProgressReporter::ProgressReporter(ProgressCallback callback, std::string stage, int64_t total, int64_t first_step)
    : callback_(std::move(callback)), stage_(std::move(stage)), total_(total), first_step_(first_step),
      start_(std::chrono::steady_clock::now()) {}

double ProgressReporter::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void ProgressReporter::update(int64_t step, const std::map<std::string, double>& values) {
  if (!callback_) return;
  ProgressEvent event;
  event.stage = stage_;
  event.step = step;
  event.total = total_;
  event.values = values;
  const int64_t done = step - first_step_;
  if (done > 0) {
    event.seconds_per_step = elapsed_seconds() / static_cast<double>(done);
    event.eta_seconds = event.seconds_per_step * static_cast<double>(total_ - step);
  }
  callback_(event);
}

}  // namespace lethe
