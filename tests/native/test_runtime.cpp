// Process-wide runtime set-up: subnormal flushing and the machine facts run summaries record.
#include <gtest/gtest.h>

#include <thread>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/runtime.hpp"

namespace {

// 1e-30 * 1e-9 = 1e-39 is a subnormal float; flushed, it is 0.
at::Tensor subnormal_products(int64_t count) { return at::full({count}, 1e-30f) * at::full({count}, 1e-9f); }

TEST(Runtime, FlushDenormalsZeroesSubnormalResultsOnEveryThread) {
  if (!lethe::denormals_flushed()) {
    // IEEE arithmetic first: the product is the subnormal 1e-39, not 0.
    EXPECT_GT(subnormal_products(8).abs().min().item<float>(), 0.0f);
  }
  if (!lethe::flush_denormals()) GTEST_SKIP() << "this CPU cannot flush subnormals";
  EXPECT_TRUE(lethe::denormals_flushed());
  // Large enough for torch to split it over its worker threads; every element flushed. (ctest runs
  // each test in its own process, so torch's pool starts after the flush, as in `lethe`.)
  lethe::init_threads();
  EXPECT_EQ(subnormal_products(1 << 20).abs().max().item<float>(), 0.0f);
  // A thread started afterwards inherits the mode.
  bool inherited = false;
  std::thread([&] { inherited = lethe::denormals_flushed(); }).join();
  EXPECT_TRUE(inherited);
  // Normal numbers are untouched.
  EXPECT_FLOAT_EQ((at::full({4}, 1e-20f) * 1e-9f).min().item<float>(), 1e-29f);
}

TEST(Runtime, MachineFactsNameTheThreadsAndTheFloatMode) {
  lethe::init_threads(1);
  const lethe::MachineFacts facts = lethe::machine_facts();
  EXPECT_FALSE(facts.cpu.empty());
  EXPECT_EQ(facts.threads, 1);
  EXPECT_EQ(facts.cores, lethe::available_cores());
  EXPECT_EQ(facts.flush_denormals, lethe::denormals_flushed());
  lethe::init_threads();
}

}  // namespace
