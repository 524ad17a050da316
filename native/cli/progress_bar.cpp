#include "cli/progress_bar.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <memory>

#include "core/error.hpp"

namespace lethe::cli {

namespace {

std::atomic<int> interrupts{0};

void on_interrupt(int) {
  if (interrupts.fetch_add(1) >= 1) std::_Exit(130);
}

std::string clock_text(double seconds) {
  const long total = static_cast<long>(seconds + 0.5);
  char buffer[32];
  if (total >= 3600) {
    std::snprintf(buffer, sizeof(buffer), "%ld:%02ld:%02ld", total / 3600, (total / 60) % 60, total % 60);
  } else {
    std::snprintf(buffer, sizeof(buffer), "%ld:%02ld", total / 60, total % 60);
  }
  return buffer;
}

}  // namespace

void install_cancel_handler() {
  static bool installed = false;
  if (!installed) std::signal(SIGINT, on_interrupt);
  installed = true;
}

ProgressCallback terminal_progress(const std::string& label) {
  install_cancel_handler();
  const bool tty = ::isatty(STDERR_FILENO) != 0;
  auto last_line = std::make_shared<std::chrono::steady_clock::time_point>();
  return [label, tty, last_line](const ProgressEvent& event) {
    if (interrupts.load() > 0) throw Cancelled(str(label, ": interrupted at step ", event.step, " of ", event.total));
    const auto now = std::chrono::steady_clock::now();
    const bool done = event.step >= event.total;
    if (!tty && !done && now - *last_line < std::chrono::seconds(10)) return;
    *last_line = now;
    constexpr int kWidth = 28;
    const double fraction = event.total > 0 ? static_cast<double>(event.step) / event.total : 1.0;
    const int filled = static_cast<int>(fraction * kWidth);
    std::string bar = std::string(filled, '#') + std::string(kWidth - filled, '.');
    std::string values;
    for (const auto& [name, value] : event.values) {
      if (name == "lr") continue;
      char item[64];
      std::snprintf(item, sizeof(item), " %s=%.4g", name.c_str(), value);
      values += item;
    }
    std::fprintf(stderr, "%s%s [%s] %lld/%lld%s  %.2f s/step  ETA %s%s", tty ? "\r" : "", label.c_str(), bar.c_str(),
                 static_cast<long long>(event.step), static_cast<long long>(event.total), values.c_str(),
                 event.seconds_per_step, clock_text(event.eta_seconds).c_str(), tty ? "\033[K" : "\n");
    if (tty && done) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  };
}

}  // namespace lethe::cli
