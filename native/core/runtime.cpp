#include "core/runtime.hpp"

#include <sched.h>
#include <sys/resource.h>

#include <cstdlib>
#include <algorithm>
#include <fstream>
#include <string>
#include <thread>

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "core/allocator.hpp"
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
  if (threads == 0) {
    if (const char* text = std::getenv("LETHE_THREADS")) {
      threads = std::atoi(text);
      check(threads > 0, "LETHE_THREADS must be a positive integer, got '", text, "'");
    }
  }
  int wanted = threads == 0 ? available_cores() : threads;
  if (at::get_num_threads() != wanted) at::set_num_threads(wanted);
  return at::get_num_threads();
}

bool flush_denormals() { return at::globalContext().setFlushDenormal(true); }

bool denormals_flushed() {
  volatile float small = 1e-30f;  // volatile: computed at run time, under this thread's float mode
  return small * 1e-9f == 0.0f;   // 1e-39 is subnormal: zero only when flushed
}

MachineFacts machine_facts() {
  MachineFacts facts;
  facts.cpu = "unknown";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);) {
    if (line.rfind("model name", 0) == 0) {
      facts.cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  facts.cores = available_cores();
  facts.threads = at::get_num_threads();
  facts.flush_denormals = denormals_flushed();
  facts.freed_memory_kept = freed_memory_kept();
  return facts;
}

}  // namespace lethe

#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <cstdlib>

namespace lethe {

namespace {

// The pack's folder: it holds the shipped models and workflows.
bool has_models(const std::filesystem::path& dir) {
  return std::filesystem::is_directory(dir / "models") && std::filesystem::is_directory(dir / "workflows");
}

}  // namespace

std::filesystem::path resource_dir() {
  if (const char* home = std::getenv("LETHE_HOME")) return home;
  // The shared object or executable this code lives in (build/lethe or python_bridge/_lethe*.so).
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&resource_dir), &info) != 0 && info.dli_fname != nullptr) {
    std::filesystem::path here = std::filesystem::absolute(info.dli_fname).parent_path();
    for (int up = 0; up < 3 && !here.empty(); ++up, here = here.parent_path())
      if (has_models(here)) return here;
  }
  return std::filesystem::current_path();
}

int64_t peak_rss_bytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;  // Linux reports kilobytes
}

namespace {

// The first number in a small text file (e.g. cgroup's memory.max), or -1.
int64_t number_in_file(const char* path) {
  std::ifstream in(path);
  int64_t value = -1;
  if (in >> value) return value;
  return -1;
}

}  // namespace

int64_t available_memory_bytes() {
  int64_t available = -1;
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t value = 0;
  std::string unit;
  while (meminfo >> key >> value >> unit) {
    if (key == "MemAvailable:") {
      available = value * 1024;
      break;
    }
  }
  const int64_t limit = number_in_file("/sys/fs/cgroup/memory.max"), used = number_in_file("/sys/fs/cgroup/memory.current");
  if (limit > 0 && used >= 0) available = available < 0 ? limit - used : std::min(available, limit - used);
  if (const char* cap = std::getenv("LETHE_MEMORY_LIMIT_MB"); cap != nullptr && *cap != '\0') {
    const int64_t bytes = std::atoll(cap) * 1024 * 1024;
    if (bytes > 0) available = available < 0 ? bytes : std::min(available, bytes);
  }
  return available < 0 ? -1 : std::max<int64_t>(available, 0) + kept_free_bytes();
}

std::string timestamp() {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm local{};
  localtime_r(&now, &local);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y%m%d-%H%M%S", &local);
  return buffer;
}

}  // namespace lethe
