// The C allocator's treatment of large blocks (core/allocator.hpp): glibc maps a block above its
// mmap threshold afresh, and keep_freed_memory() makes it serve such blocks from the heap and keep
// them when freed. Checked by what glibc itself reports (mallinfo2), not by timing. ctest runs each
// test in its own process, so one test's thresholds do not reach another.
#include <malloc.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

#include "core/allocator.hpp"
#include "core/runtime.hpp"
#include "test_helpers.hpp"

namespace {

using lethe::testing::ScopedEnv;

constexpr size_t kBlock = size_t{40} << 20;  // the bench's widest fp32 activation at 128 rows is 38.5 MB

// Bytes of mmapped blocks while a kBlock-sized block is held, and how much more heap glibc holds
// from the system after it is freed than before it was allocated.
struct BlockFacts {
  size_t mapped_while_held = 0;
  size_t heap_kept_after_free = 0;
};

BlockFacts allocate_and_free_a_large_block() {
  BlockFacts facts;
  const size_t mapped_before = mallinfo2().hblkhd;
  const size_t heap_before = mallinfo2().arena;
  void* block = std::malloc(kBlock);
  EXPECT_NE(block, nullptr);
  std::memset(block, 1, kBlock);
  facts.mapped_while_held = mallinfo2().hblkhd - mapped_before;
  std::free(block);
  const size_t heap_after = mallinfo2().arena;
  facts.heap_kept_after_free = heap_after > heap_before ? heap_after - heap_before : 0;
  return facts;
}

TEST(Allocator, GlibcMapsALargeBlockAfreshUnlessFreedMemoryIsKept) {
  ScopedEnv env("LETHE_REUSED_ALLOCATION_BYTES", "");
  ASSERT_FALSE(lethe::freed_memory_kept());
  EXPECT_EQ(lethe::reused_allocation_bytes(), 4 * 1024 * 1024 * static_cast<int64_t>(sizeof(long)));  // glibc's formula
  const BlockFacts before = allocate_and_free_a_large_block();
  EXPECT_GE(before.mapped_while_held, kBlock);  // its own mapping, unmapped again by free
  EXPECT_LT(before.heap_kept_after_free, kBlock);

  ASSERT_TRUE(lethe::keep_freed_memory());
  EXPECT_TRUE(lethe::freed_memory_kept());
  EXPECT_EQ(lethe::reused_allocation_bytes(), lethe::kKeptFreedBytes);
  const BlockFacts after = allocate_and_free_a_large_block();
  EXPECT_EQ(after.mapped_while_held, 0u);      // from the heap
  EXPECT_GE(after.heap_kept_after_free, kBlock);  // and still there for the next one
}

TEST(Allocator, KeepFreedMemoryCanBeTurnedOffToMeasureIt) {
  ScopedEnv env("LETHE_KEEP_FREED_MEMORY", "0");
  EXPECT_FALSE(lethe::keep_freed_memory());
  EXPECT_FALSE(lethe::freed_memory_kept());
  EXPECT_GE(allocate_and_free_a_large_block().mapped_while_held, kBlock);
}

// The memory guard's available bytes (core/runtime.hpp) count the freed memory the heap keeps:
// with the system's share capped at 1 MiB, a freed 40 MB block is available only once kept.
TEST(Allocator, FreedMemoryTheHeapKeepsCountsAsAvailable) {
  ScopedEnv cap("LETHE_MEMORY_LIMIT_MB", "1");
  constexpr int64_t kSystem = int64_t{1} << 20;
  EXPECT_EQ(lethe::kept_free_bytes(), 0);
  allocate_and_free_a_large_block();
  EXPECT_EQ(lethe::available_memory_bytes(), kSystem);  // glibc unmapped it: the system's again

  ASSERT_TRUE(lethe::keep_freed_memory());
  allocate_and_free_a_large_block();
  EXPECT_GE(lethe::kept_free_bytes(), static_cast<int64_t>(kBlock));
  EXPECT_GE(lethe::available_memory_bytes(), kSystem + static_cast<int64_t>(kBlock));
  // Held again, it is no longer counted.
  const int64_t free_before = lethe::kept_free_bytes();
  void* block = std::malloc(kBlock);
  std::memset(block, 1, kBlock);
  EXPECT_LE(lethe::kept_free_bytes() + static_cast<int64_t>(kBlock), free_before);
  // (reading /proc/meminfo itself allocates and frees a little)
  EXPECT_NEAR(lethe::available_memory_bytes(), kSystem + lethe::kept_free_bytes(), 64 * 1024);
  std::free(block);
}

TEST(Allocator, ReusedAllocationBytesTakeTheOverride) {
  {
    ScopedEnv env("LETHE_REUSED_ALLOCATION_BYTES", "123456");
    EXPECT_EQ(lethe::reused_allocation_bytes(), 123456);
  }
  {
    ScopedEnv env("LETHE_REUSED_ALLOCATION_BYTES", "0");
    EXPECT_EQ(lethe::reused_allocation_bytes(), 0);
  }
  ScopedEnv env("LETHE_REUSED_ALLOCATION_BYTES", "");  // empty: not set
  ASSERT_TRUE(lethe::keep_freed_memory());
  EXPECT_EQ(lethe::reused_allocation_bytes(), lethe::kKeptFreedBytes);
}

}  // namespace
