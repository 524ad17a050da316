// Each image under several conditionings in one forward (classifier-free guidance's unconditional
// and conditional rows, models/unet.hpp forward_groups): the layers before the first
// cross-attention run once per image, and the result is what the forward of the repeated rows
// gives, in values and gradients, through the UNet, through DiffusionModel (channels-last in
// inference mode, split into chunks of images) and through the sampler.
#include <vector>

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "diffusion/sampling.hpp"
#include "models/diffusion_model.hpp"
#include "test_helpers.hpp"

using namespace lethe;
using lethe::testing::perturbed_unet;
using lethe::testing::ScopedEnv;

namespace {

struct Rows {
  at::Tensor x, t, context;  // x [B, 1, 8, 8], t [B], context [groups * B, 3, 8]
};

Rows random_rows(int64_t images, int64_t groups) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(5);
  return {at::randn({images, 1, 8, 8}, generator), at::randint(0, 1000, {images}, generator, at::kLong),
          at::randn({groups * images, 3, 8}, generator)};
}

}  // namespace

// Cross-attention on the second level (tiny UNet), on the first (nothing shared but the input
// convolution's block up to it) and nowhere (every encoder block shared, the middle block too
// without middle attention).
TEST(GuidedForward, GroupsGiveTheRepeatedRowsForwardWhereverCrossAttentionSits) {
  std::vector<models::UNetConfig> configs(3, lethe::testing::tiny_unet_config());
  configs[1].attention_levels = {0, 1};
  configs[2].attention_levels = {};
  configs[2].middle_attention = false;
  for (const auto& config : configs) {
    models::UNet unet = perturbed_unet(config, 4, 0.1);
    for (const int64_t groups : {1, 2, 3}) {
      const Rows rows = random_rows(4, groups);
      at::NoGradGuard no_grad;
      const at::Tensor repeated = unet->forward(rows.x.repeat({groups, 1, 1, 1}), rows.t.repeat({groups}), rows.context);
      const at::Tensor grouped = unet->forward_groups(rows.x, rows.t, rows.context, groups);
      ASSERT_EQ(grouped.sizes(), repeated.sizes());
      EXPECT_TRUE(at::allclose(grouped, repeated, 1e-5, 1e-6)) << "attention levels " << config.attention_levels.size()
                                                               << ", groups " << groups;
      if (groups > 1 && !config.attention_levels.empty()) {  // each group's rows are its own context's
        const at::Tensor swapped = rows.context.roll(4, 0);
        EXPECT_FALSE(at::allclose(unet->forward_groups(rows.x, rows.t, swapped, groups), grouped, 1e-3, 1e-4));
      }
    }
  }
}

// Gradients reach x (summed over its groups), the context and the weights as through the repeated
// rows, also with activation checkpointing (which repeats the rows before the first block).
TEST(GuidedForward, GradientsAreTheRepeatedRowsForwardsGradients) {
  for (const bool checkpointing : {false, true}) {
    models::UNet unet = perturbed_unet(lethe::testing::tiny_unet_config(), 4, 0.1);
    unet->gradient_checkpointing = checkpointing;
    const Rows rows = random_rows(3, 2);
    const at::Tensor weight = at::randn({6, 1, 8, 8});  // a loss that weighs every output differently
    auto gradients = [&](bool grouped) {
      at::Tensor x = rows.x.clone().requires_grad_(true), context = rows.context.clone().requires_grad_(true);
      const at::Tensor out = grouped ? unet->forward_groups(x, rows.t, context, 2)
                                     : unet->forward(x.repeat({2, 1, 1, 1}), rows.t.repeat({2}), context);
      std::vector<at::Tensor> inputs = {x, context, unet->parameters().front()};
      return torch::autograd::grad({(out * weight).sum()}, inputs);
    };
    const auto expected = gradients(false), got = gradients(true);
    for (size_t i = 0; i < expected.size(); ++i)
      EXPECT_TRUE(at::allclose(got[i], expected[i], 1e-4, 1e-6)) << "input " << i << ", checkpointing " << checkpointing;
  }
}

// DiffusionModel in inference mode (channels-last fp32 on a CPU), whole and as chunks of images
// each under both groups: the unconditional rows of every chunk first, then the conditional ones.
TEST(GuidedForward, DiffusionModelGroupsMatchItsPredictWholeAndInChunks) {
  models::DiffusionModel model(perturbed_unet(lethe::testing::tiny_unet_config(), 4, 0.1), models::TokenEncoder{nullptr},
                               diffusion::ScheduleConfig{});
  const Rows rows = random_rows(10, 2);
  c10::InferenceMode inference;
  ScopedEnv whole_env("LETHE_REUSED_ALLOCATION_BYTES", "0");
  const at::Tensor expected = model.predict(rows.x.repeat({2, 1, 1, 1}), rows.t.repeat({2}), rows.context);
  EXPECT_TRUE(at::allclose(model.predict_groups(rows.x, rows.t, rows.context, 2), expected, 1e-5, 1e-6));
  {
    // 8 rows of 2048 fp32 elements fit: 4 images under 2 groups, chunks of 4, 3 and 3 images.
    ScopedEnv env("LETHE_REUSED_ALLOCATION_BYTES", std::to_string(8 * 2048 * 4));
    EXPECT_TRUE(at::allclose(model.predict_groups(rows.x, rows.t, rows.context, 2), expected, 1e-5, 1e-6));
  }
  lethe::testing::expect_error([&] { model.predict_groups(rows.x, rows.t, rows.context.narrow(0, 0, 15), 2); },
                               {"predict_groups", "2 conditionings of 10 rows", "got 15"});
}

// Guided DDIM sampling (one forward of both groups per step) against the same steps taken with
// two separate forwards per step: eps = uncond + w (cond - uncond).
TEST(GuidedForward, GuidedSamplingIsTheTwoForwardsGuidance) {
  models::DiffusionModel model(perturbed_unet(lethe::testing::tiny_unet_config(), 4, 0.1), models::TokenEncoder{nullptr},
                               diffusion::ScheduleConfig{});
  const Rows rows = random_rows(3, 1);
  const at::Tensor uncond = at::randn({1, 3, 8}, at::make_generator<at::CPUGeneratorImpl>(6));
  diffusion::SamplingOptions options;
  options.steps = 4;
  options.guidance = 3.0;
  options.seed = 11;
  const at::Tensor sampled = diffusion::sample(model, model.schedule(), rows.context, uncond, {1, 8, 8}, options);

  // The same sampler with guidance computed from two separate forwards.
  struct TwoForwards : models::Denoiser {
    models::DiffusionModel& inner;
    explicit TwoForwards(models::DiffusionModel& inner) : inner(inner) {}
    at::Tensor predict(const at::Tensor& x, const at::Tensor& t, const models::Conditioning& c) override {
      const int64_t b = x.size(0) / 2;
      return at::cat({inner.predict(x.narrow(0, 0, b), t.narrow(0, 0, b), c.slice(0, b)),
                      inner.predict(x.narrow(0, b, b), t.narrow(0, b, b), c.slice(b, b))});
    }
    std::vector<at::Tensor> trainable_parameters() override { return {}; }
  } two_forwards(model);
  const at::Tensor expected =
      diffusion::sample(two_forwards, model.schedule(), rows.context, uncond, {1, 8, 8}, options);
  EXPECT_TRUE(at::allclose(sampled, expected, 1e-4, 1e-5));
}
