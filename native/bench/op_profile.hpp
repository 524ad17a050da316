// Where the time of a piece of native work goes, by operator: libtorch's own (Kineto) CPU
// profiler records every ATen op and autograd node while it is on; `stop` turns it off and
// returns each op's self time (its duration minus that of the ops it called), summed over
// calls, largest first. Used by `lethe perf` for the training-step profile in `make bench`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace lethe::bench {

struct OpTime {
  std::string name;
  double self_seconds = 0;  // summed over calls, children excluded
  int64_t calls = 0;
};

class OpProfiler {
 public:
  OpProfiler() = default;
  OpProfiler(const OpProfiler&) = delete;
  OpProfiler& operator=(const OpProfiler&) = delete;
  ~OpProfiler();

  void start();                // records ops on this thread (and threads it starts) from now on
  std::vector<OpTime> stop();  // stops recording; self time per op name, largest first
  bool running() const { return running_; }

 private:
  bool running_ = false;
};

}  // namespace lethe::bench
