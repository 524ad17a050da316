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

// "YYYYmmdd-HHMMSS" in local time, for run directory names.
std::string timestamp();

}  // namespace lethe
