// How a forward pass without autograd is split so that the allocator reuses its memory
// (models/unet_memory.hpp): the widest activation counted by hand from the UNet's structure, the
// rows that fit, the chunks a batch is cut into, and DiffusionModel::predict in inference mode
// giving a split batch the numbers of the whole one.
#include <string>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include "models/diffusion_model.hpp"
#include "models/unet_memory.hpp"
#include "test_helpers.hpp"

using namespace lethe;
using lethe::testing::ScopedEnv;

namespace {

// The embedded bench's UNet (bench_unet_config): widths 32, 64, 64, one ResBlock per level,
// attention on the coarsest level.
models::UNetConfig bench_like_config() {
  models::UNetConfig config = lethe::testing::tiny_unet_config();  // one channel, one ResBlock per level
  config.model_channels = 32;
  config.channel_mult = {1, 2, 2};
  config.attention_levels = {2};
  return config;
}

}  // namespace

TEST(UNetMemory, WidestActivationIsTheWidestConcatenationOrFeedForward) {
  // Bench UNet at 28x28: the decoder's first block at 28x28 concatenates the upsampled 64
  // channels with the 32-channel skip: 96 x 784. Its feed-forward (8 x 64 x 7 x 7) is narrower.
  EXPECT_EQ(models::unet_widest_activation(bench_like_config(), 28, 28), 96 * 28 * 28);
  // Tiny UNet (widths 8, 16, attention on the second level) at 8x8: the feed-forward, 8 x 16 x
  // 4 x 4 = 2048, is wider than any concatenation (16 + 8 channels x 64 = 1536).
  EXPECT_EQ(models::unet_widest_activation(lethe::testing::tiny_unet_config(), 8, 8), 8 * 16 * 4 * 4);
  // An odd size: 7x7 -> 4x4 after the stride-2 downsample, like the convolution.
  EXPECT_EQ(models::unet_widest_activation(lethe::testing::tiny_unet_config(), 7, 7), 8 * 16 * 4 * 4);
}

TEST(UNetMemory, RowsPerForwardAreWhatKeepsTheWidestActivationReusableAndNoneBelowEight) {
  const models::UNetConfig config = bench_like_config();
  const int64_t per_row = 96 * 28 * 28;
  const int64_t reused = 32LL << 20;  // glibc's largest mmap threshold
  EXPECT_EQ(models::rows_per_forward(config, 28, 28, 4, reused), reused / (per_row * 4));  // 111: fp32
  EXPECT_EQ(models::rows_per_forward(config, 28, 28, 2, reused), reused / (per_row * 2));  // 222: bf16
  EXPECT_EQ(models::rows_per_forward(config, 28, 28, 4, 8 * per_row * 4), 8);
  EXPECT_EQ(models::rows_per_forward(config, 28, 28, 4, 8 * per_row * 4 - 1), 0);  // 7 rows: no limit
  EXPECT_EQ(models::rows_per_forward(config, 28, 28, 4, 0), 0);                    // no limit set
}

TEST(UNetMemory, RowChunksAreTheFewestAndEven) {
  using Chunks = std::vector<int64_t>;
  EXPECT_EQ(models::row_chunks(128, 111), (Chunks{64, 64}));
  EXPECT_EQ(models::row_chunks(10, 4), (Chunks{4, 3, 3}));
  EXPECT_EQ(models::row_chunks(8, 8), (Chunks{8}));
  EXPECT_EQ(models::row_chunks(9, 8), (Chunks{5, 4}));
  EXPECT_EQ(models::row_chunks(5, 0), (Chunks{5}));
  EXPECT_EQ(models::row_chunks(0, 3), (Chunks{}));
}

// A batch cut into chunks gives every row the numbers of the whole batch's forward: each row's
// own input, timestep and context (all different, so a chunk given another's rows would show).
TEST(UNetMemory, InferenceSplitsABatchTheAllocatorWouldMapAfreshWithTheSameNumbers) {
  models::UNet unet(lethe::testing::tiny_unet_config());
  unet->initialize(3);
  {
    at::NoGradGuard no_grad;
    at::manual_seed(4);
    for (auto& p : unet->parameters()) p.add_(0.1 * at::randn_like(p));
  }
  models::DiffusionModel model(unet, models::TokenEncoder{nullptr}, diffusion::ScheduleConfig{});
  at::manual_seed(5);
  const at::Tensor x = at::randn({20, 1, 8, 8});
  const at::Tensor t = at::randint(0, 1000, {20}, at::kLong);
  const at::Tensor context = at::randn({20, 3, 8});
  c10::InferenceMode inference;
  at::Tensor whole, split;
  {
    ScopedEnv env("LETHE_REUSED_ALLOCATION_BYTES", "0");  // no limit: one forward
    whole = model.predict(x, t, context);
  }
  {
    // 8 rows of 2048 fp32 elements fit: chunks of 7, 7 and 6.
    ScopedEnv env("LETHE_REUSED_ALLOCATION_BYTES", std::to_string(8 * 2048 * 4));
    split = model.predict(x, t, context);
  }
  ASSERT_EQ(split.sizes(), whole.sizes());
  EXPECT_TRUE(at::allclose(split, whole, 1e-5, 1e-6));
  // Every chunk's rows are its own: the last chunk alone gives the last six rows.
  const at::Tensor last = model.predict(x.narrow(0, 14, 6), t.narrow(0, 14, 6), context.narrow(0, 14, 6));
  EXPECT_TRUE(at::allclose(last, whole.narrow(0, 14, 6), 1e-5, 1e-6));
}
