// Every test starts from the same global torch seed, so a test that draws from the default
// generator (at::randn without a generator) sees the same numbers whichever tests ran before it
// or whichever --gtest_filter picked it.
#include <ATen/Context.h>
#include <gtest/gtest.h>

namespace {

class SeedEachTest : public ::testing::EmptyTestEventListener {
  void OnTestStart(const ::testing::TestInfo&) override { at::manual_seed(0); }
};

const bool kRegistered = [] {
  ::testing::UnitTest::GetInstance()->listeners().Append(new SeedEachTest);
  return true;
}();

}  // namespace
