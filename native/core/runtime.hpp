// Process-wide runtime set-up: version string and torch thread count.
#pragma once

#include <string>

namespace lethe {

// Semantic version of the native core, e.g. "0.1.0".
std::string version();

// A one-line build description: version, torch version, C++ ABI.
std::string build_info();

// Number of CPU cores this process may run on (sched affinity, then hardware count).
int available_cores();

// Sets torch's intra-op thread count to `threads` (0 = $LETHE_THREADS if set, else
// available_cores()) and returns it.
// Every entry point (CLI, Python module) calls this once at start-up: torch may default
// to fewer threads than the machine has.
int init_threads(int threads = 0);

// Makes the CPU flush subnormal floats to zero (FTZ/DAZ) for the calling thread and the
// threads it starts afterwards (torch's worker pool included, when called before any
// parallel work); returns whether the CPU supports it. The `lethe` program calls it at
// start-up: a saturated objective (NPO's softplus at beta*k = 2500) drives gradients and
// Adam moments into the subnormal range, where some CPUs take over a hundred cycles per
// operation (measured: 30 NPO steps, 122 s plain, 16 s flushed, bitwise-identical model).
// The Python module does not call it: it would change the floating-point mode of the host
// process (ComfyUI) for everyone.
bool flush_denormals();

// Whether subnormal floats are flushed to zero on the calling thread right now.
bool denormals_flushed();

// What wall times depend on: the processor, its cores, torch's threads, the float mode, the
// allocator's thresholds.
struct MachineFacts {
  std::string cpu;       // /proc/cpuinfo "model name", else "unknown"
  int cores = 0;         // available_cores()
  int threads = 0;       // at::get_num_threads()
  bool flush_denormals = false;  // denormals_flushed() on the calling thread
  bool freed_memory_kept = false;  // freed_memory_kept() (core/allocator.hpp)
};
MachineFacts machine_facts();

}  // namespace lethe

#include <cstdint>
#include <filesystem>

namespace lethe {

// Where Lethe's shipped files (models/bench, workflows) live: $LETHE_HOME if set, else the
// repository the running program was built in (found from the executable or module path),
// else the current directory.
std::filesystem::path resource_dir();

// Peak resident memory of this process so far, in bytes (getrusage).
int64_t peak_rss_bytes();

// Memory this process can still use, in bytes: what it can still take from the system
// (/proc/meminfo's MemAvailable, lowered to what the cgroup (container) limit leaves when there
// is one, and capped by $LETHE_MEMORY_LIMIT_MB if set, for tests and shared machines) plus the
// freed memory the C allocator keeps for it (kept_free_bytes(), core/allocator.hpp). -1 when
// what the system can give cannot be told.
int64_t available_memory_bytes();

// "YYYYmmdd-HHMMSS" in local time, for run directory names.
std::string timestamp();

}  // namespace lethe
