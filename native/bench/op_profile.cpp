#include "bench/op_profile.hpp"

#include <algorithm>
#include <map>
#include <set>
#include <unordered_map>

#include <torch/csrc/autograd/profiler_kineto.h>

#include "core/error.hpp"

namespace lethe::bench {

namespace profiler = torch::autograd::profiler;
using torch::profiler::impl::ActivityType;
using torch::profiler::impl::ProfilerConfig;
using torch::profiler::impl::ProfilerState;

namespace {
const std::set<ActivityType>& cpu_only() {
  static const std::set<ActivityType> activities{ActivityType::CPU};
  return activities;
}
}  // namespace

OpProfiler::~OpProfiler() {
  if (running_) profiler::disableProfiler();
}

void OpProfiler::start() {
  check(!running_, "OpProfiler::start: already running");
  const ProfilerConfig config(ProfilerState::KINETO);
  profiler::prepareProfiler(config, cpu_only());
  profiler::enableProfiler(config, cpu_only());
  running_ = true;
}

std::vector<OpTime> OpProfiler::stop() {
  check(running_, "OpProfiler::stop: not running");
  running_ = false;
  const std::unique_ptr<profiler::ProfilerResult> result = profiler::disableProfiler();
  // Per thread, events sorted by start (outer before inner on ties); a stack of open events
  // gives each event's parent, whose self time loses the child's duration.
  struct Span {
    uint64_t start, end;
    std::string name;
  };
  std::map<uint64_t, std::vector<Span>> by_thread;
  for (const auto& event : result->events()) {
    if (event.isAsync() || event.deviceType() != c10::DeviceType::CPU || event.endNs() < event.startNs()) continue;
    by_thread[event.startThreadId()].push_back({event.startNs(), event.endNs(), event.name()});
  }
  std::unordered_map<std::string, OpTime> totals;
  for (auto& [thread, spans] : by_thread) {
    std::sort(spans.begin(), spans.end(), [](const Span& a, const Span& b) {
      return a.start != b.start ? a.start < b.start : a.end > b.end;
    });
    std::vector<OpTime*> open;
    std::vector<uint64_t> open_end;
    for (const Span& span : spans) {
      while (!open_end.empty() && open_end.back() <= span.start) {
        open.pop_back();
        open_end.pop_back();
      }
      OpTime& total = totals[span.name];
      total.name = span.name;
      const double seconds = 1e-9 * static_cast<double>(span.end - span.start);
      total.self_seconds += seconds;
      total.calls += 1;
      if (!open.empty() && span.end <= open_end.back()) open.back()->self_seconds -= seconds;
      open.push_back(&total);
      open_end.push_back(span.end);
    }
  }
  std::vector<OpTime> ops;
  ops.reserve(totals.size());
  for (auto& [name, total] : totals) ops.push_back(total);
  std::sort(ops.begin(), ops.end(), [](const OpTime& a, const OpTime& b) { return a.self_seconds > b.self_seconds; });
  return ops;
}

}  // namespace lethe::bench
