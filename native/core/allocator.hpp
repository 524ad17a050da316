// How the C allocator (glibc's malloc, which libtorch's CPU tensors come from) treats large
// blocks, and the `lethe` program's choice to keep freed memory for reuse.
#pragma once

#include <cstdint>

namespace lethe {

// Raises glibc's mmap and trim thresholds to kKeptFreedBytes, so that large blocks come from
// the heap and stay there when freed, ready for the next forward or training step, instead of
// being mapped afresh each time, their pages faulting in (and zeroed by the kernel) at every
// use. Returns whether the thresholds were raised: false on another C library, or when
// $LETHE_KEEP_FREED_MEMORY is "0" (to measure the difference). The `lethe` program calls it at
// start-up; the Python module does not: it would change the allocator of the host process
// (ComfyUI) for everyone. Measured on an AVX2 AMD EPYC (docs/performance.md §Precision,
// "Freed memory kept"): the same bench model, bit for bit, with less time per step.
bool keep_freed_memory();

// Whether keep_freed_memory() raised the thresholds in this process.
bool freed_memory_kept();

// Bytes of freed blocks the C allocator keeps in this process's heap for reuse (mallinfo2's
// fordblks) once keep_freed_memory() raised the thresholds; 0 otherwise. Those pages stay
// resident, so the system counts them as used (not in MemAvailable), yet the next forward takes
// them without asking the system for more: available_memory_bytes() adds them.
int64_t kept_free_bytes();

// The thresholds keep_freed_memory() sets: above a training step's working set at the bench's
// default batch, so that freeing one step's activations does not hand them back to the kernel.
inline constexpr int64_t kKeptFreedBytes = int64_t{1} << 30;

// The largest block the C allocator hands out again after it is freed:
// $LETHE_REUSED_ALLOCATION_BYTES when set (0: no limit; for tests and other allocators), else
// kKeptFreedBytes once keep_freed_memory() raised the thresholds, else glibc's largest dynamic
// mmap threshold on a 64-bit machine (DEFAULT_MMAP_THRESHOLD_MAX, 32 MiB): blocks above it are
// mapped afresh each time.
int64_t reused_allocation_bytes();

}  // namespace lethe
