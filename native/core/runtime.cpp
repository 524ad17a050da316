#include "core/runtime.hpp"

#include <sched.h>

#include <thread>

#include <ATen/Parallel.h>
#include <torch/version.h>

#include "core/error.hpp"

#ifndef LETHE_VERSION
#error "LETHE_VERSION must be defined by the build"
#endif

namespace lethe {

std::string version() { return LETHE_VERSION; }

std::string build_info() {
  return str("lethe ", version(), " (torch ", TORCH_VERSION, ", C++ ABI ", _GLIBCXX_USE_CXX11_ABI,
             ", ", at::get_parallel_info().find("OpenMP") != std::string::npos ? "OpenMP" : "native",
             " threads)");
}

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    int count = CPU_COUNT(&set);
    if (count > 0) return count;
  }
  unsigned hardware = std::thread::hardware_concurrency();
  return hardware > 0 ? static_cast<int>(hardware) : 1;
}

int init_threads(int threads) {
  check(threads >= 0, "init_threads: thread count must be >= 0, got ", threads);
  int wanted = threads == 0 ? available_cores() : threads;
  if (at::get_num_threads() != wanted) at::set_num_threads(wanted);
  return at::get_num_threads();
}

}  // namespace lethe
