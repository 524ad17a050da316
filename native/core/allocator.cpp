#include "core/allocator.hpp"

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace lethe {

namespace {

std::atomic<bool> kept{false};

}  // namespace

bool keep_freed_memory() {
#if defined(__GLIBC__)
  if (const char* set = std::getenv("LETHE_KEEP_FREED_MEMORY"); set != nullptr && std::strcmp(set, "0") == 0)
    return false;
  // Both, or the top of the heap is still trimmed (and refaulted) after every step.
  const bool raised = mallopt(M_MMAP_THRESHOLD, static_cast<int>(kKeptFreedBytes)) == 1 &&
                      mallopt(M_TRIM_THRESHOLD, static_cast<int>(kKeptFreedBytes)) == 1;
  kept = raised;
  return raised;
#else
  return false;
#endif
}

bool freed_memory_kept() { return kept; }

int64_t kept_free_bytes() {
#if defined(__GLIBC__)
  if (kept) return static_cast<int64_t>(mallinfo2().fordblks);
#endif
  return 0;
}

int64_t reused_allocation_bytes() {
  if (const char* set = std::getenv("LETHE_REUSED_ALLOCATION_BYTES"); set != nullptr && *set != '\0')
    return std::max<int64_t>(std::atoll(set), 0);
  if (kept) return kKeptFreedBytes;
  return int64_t{4} * 1024 * 1024 * static_cast<int64_t>(sizeof(long));
}

}  // namespace lethe
