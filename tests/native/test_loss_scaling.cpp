// Dynamic loss scaling (core/loss_scaling.hpp): the scale follows torch.amp.GradScaler's rule
// (halve on overflow, double after growth_interval good steps), unscaling by a power of two is
// exact, overflows are found, and the state round-trips through a checkpoint.
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "core/loss_scaling.hpp"
#include "test_helpers.hpp"

using namespace lethe;
using lethe::testing::expect_error;

TEST(LossScaling, TheScaleHalvesOnOverflowAndDoublesAfterTheGrowthIntervalOfGoodSteps) {
  LossScaler scaler(true, {.initial_scale = 1024.0, .growth_interval = 3});
  EXPECT_TRUE(scaler.enabled());
  // The rule, written out: overflow -> scale / 2 and the count restarts; a good step counts, and
  // the third in a row doubles the scale and restarts the count.
  const bool overflows[] = {false, false, false, true, false, false, true, true, false, false, false, false};
  double expected = 1024.0;
  int good = 0;
  for (const bool overflowed : overflows) {
    scaler.update(overflowed, "test");
    if (overflowed) {
      expected /= 2;
      good = 0;
    } else if (++good == 3) {
      expected *= 2;
      good = 0;
    }
    ASSERT_EQ(scaler.scale(), expected);
    ASSERT_EQ(scaler.state().at("good_steps").get<int>(), good);
  }
  EXPECT_EQ(expected, 512.0);  // the sequence above: 1024 -> 2048 -> 1024 -> 512 -> 256 -> 512

  LossScaler off;  // disabled: scale 1, the loss as it is, updates change nothing
  EXPECT_FALSE(off.enabled());
  off.update(true, "test");
  EXPECT_EQ(off.scale(), 1.0);
  const at::Tensor loss = at::tensor(0.25);
  EXPECT_TRUE(off.scaled(loss).is_same(loss));
  EXPECT_EQ(scaler.scaled(loss).item<double>(), 0.25 * 512.0);
}

TEST(LossScaling, UnscalingByAPowerOfTwoIsExactAndOverflowsAreFound) {
  at::manual_seed(0);
  const std::vector<at::Tensor> gradients = {at::randn({7, 5}), at::randn({3}) * 1e-6, at::randn({2, 2, 3, 3}) * 1e3};
  LossScaler scaler(true);  // 2^16
  std::vector<at::Tensor> scaled;
  for (const at::Tensor& g : gradients) scaled.push_back(g * scaler.scale());
  scaled.push_back(at::Tensor());  // a parameter without a gradient is skipped
  EXPECT_TRUE(scaler.unscale(scaled));
  for (size_t i = 0; i < gradients.size(); ++i) EXPECT_TRUE(at::equal(scaled[i], gradients[i])) << i;

  std::vector<at::Tensor> overflowed = {at::ones({4}), at::ones({2})};
  overflowed[1][1] = std::numeric_limits<float>::infinity();
  EXPECT_FALSE(scaler.unscale(overflowed));
  overflowed[1][1] = std::nan("");
  EXPECT_FALSE(LossScaler().unscale(overflowed));  // disabled: still the finiteness check
  EXPECT_TRUE(LossScaler().unscale({at::ones({3})}));
}

TEST(LossScaling, StateRoundTripsAndBadStateOrExhaustedScaleIsAnErrorThatChangesNothing) {
  LossScaler a(true, {.growth_interval = 5});
  a.update(true, "test");
  a.update(false, "test");
  LossScaler b(true, {.growth_interval = 5});
  b.restore(a.state(), "checkpoint 'c'");
  EXPECT_EQ(b.state(), a.state());
  EXPECT_EQ(b.scale(), 32768.0);
  expect_error([&] { b.restore({{"scale", 2.0}}, "checkpoint 'c' loss_scaler"); },
               {"checkpoint 'c' loss_scaler", "good_steps", "{\"scale\":2.0}"});
  expect_error([&] { b.restore({{"scale", -1.0}, {"good_steps", 0}}, "checkpoint 'c'"); },
               {"checkpoint 'c'", "positive loss scale"});

  LossScaler small(true, {.initial_scale = 4.0, .minimum_scale = 1.0});
  small.update(true, "step 0");
  small.update(true, "step 1");
  EXPECT_EQ(small.scale(), 1.0);
  expect_error([&] { small.update(true, "training step 2"); }, {"training step 2", "does not train in fp16", "bf16 or fp32"});
  EXPECT_EQ(small.scale(), 1.0);  // unchanged: the state of the last good step
}
