// One noisy input under several conditionings, each output with a graph of its own (SISS's retain
// and forget terms, caption ablation and preservation: models/unet.hpp forward_each): the layers
// before the first cross-attention run once, and every output, and every gradient taken from one
// output, is bit for bit what a separate forward gives, through the UNet and through
// DiffusionModel in fp32 and bf16.
#include <vector>

#include <ATen/ATen.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "core/precision.hpp"
#include "models/diffusion_model.hpp"
#include "test_helpers.hpp"

using namespace lethe;
using lethe::testing::perturbed_unet;

namespace {

struct Inputs {
  at::Tensor x, t;
  std::vector<at::Tensor> contexts;  // each [B, 3, 8]
};

Inputs random_inputs(int64_t images, int64_t contexts) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(15);
  Inputs inputs{at::randn({images, 1, 8, 8}, generator), at::randint(0, 1000, {images}, generator, at::kLong), {}};
  for (int64_t k = 0; k < contexts; ++k) inputs.contexts.push_back(at::randn({images, 3, 8}, generator));
  return inputs;
}

// Gradients of sum(out * weight) for x, the context and every weight, taken from one output.
std::vector<at::Tensor> gradients(const at::Tensor& out, const at::Tensor& weight, const at::Tensor& x,
                                  const at::Tensor& context, const std::vector<at::Tensor>& parameters) {
  std::vector<at::Tensor> inputs = {x, context};
  inputs.insert(inputs.end(), parameters.begin(), parameters.end());
  return torch::autograd::grad({(out * weight).sum()}, inputs, {}, /*retain_graph=*/true, false, /*allow_unused=*/true);
}

void expect_same_bits(const std::vector<at::Tensor>& got, const std::vector<at::Tensor>& expected,
                      const std::string& what) {
  ASSERT_EQ(got.size(), expected.size()) << what;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].defined(), expected[i].defined()) << what << ", tensor " << i;
    if (got[i].defined()) EXPECT_TRUE(at::equal(got[i], expected[i])) << what << ", tensor " << i;
  }
}

}  // namespace

// Cross-attention on the second level (tiny UNet), on the first and nowhere; channels-last too;
// with activation checkpointing (every context then runs the whole UNet).
TEST(SharedInputForward, EachOutputAndItsGradientsAreItsOwnForwardsBitForBit) {
  std::vector<models::UNetConfig> configs(3, lethe::testing::tiny_unet_config());
  configs[1].attention_levels = {0, 1};
  configs[2].attention_levels = {};
  configs[2].middle_attention = false;
  for (size_t c = 0; c < configs.size(); ++c) {
    for (const bool channels_last : {false, true}) {
      for (const bool checkpointing : {false, true}) {
        const std::string what = "config " + std::to_string(c) + (channels_last ? ", channels-last" : ", NCHW") +
                                 (checkpointing ? ", checkpointing" : "");
        models::UNet unet = perturbed_unet(configs[c], 4, 0.1);
        unet->channels_last = channels_last;
        unet->gradient_checkpointing = checkpointing;
        const Inputs inputs = random_inputs(3, 2);
        const at::Tensor weight = at::randn({3, 1, 8, 8}, at::make_generator<at::CPUGeneratorImpl>(16));
        at::Tensor x = inputs.x.clone().requires_grad_(true);
        std::vector<at::Tensor> contexts;
        for (const at::Tensor& context : inputs.contexts) contexts.push_back(context.clone().requires_grad_(true));
        const std::vector<at::Tensor> outputs = unet->forward_each(x, inputs.t, contexts);
        ASSERT_EQ(outputs.size(), 2u);
        for (size_t k = 0; k < 2; ++k) {
          at::Tensor x_alone = inputs.x.clone().requires_grad_(true);
          at::Tensor context_alone = inputs.contexts[k].clone().requires_grad_(true);
          const at::Tensor alone = unet->forward(x_alone, inputs.t, context_alone);
          EXPECT_TRUE(at::equal(outputs[k], alone)) << what << ", context " << k;
          expect_same_bits(gradients(outputs[k], weight, x, contexts[k], unet->parameters()),
                           gradients(alone, weight, x_alone, context_alone, unet->parameters()),
                           what + ", gradients from output " + std::to_string(k));
        }
        if (!configs[c].attention_levels.empty()) EXPECT_FALSE(at::allclose(outputs[0], outputs[1], 1e-3, 1e-4)) << what;
      }
    }
  }
}

// DiffusionModel under autograd in fp32 (NCHW) and bf16 (autocast, channels-last on a CPU): the
// same bits as predict per conditioning, outputs and weight gradients; three conditionings.
TEST(SharedInputForward, DiffusionModelPredictEachIsPredictPerConditioningInEachPrecision) {
  for (const Precision precision : {Precision::fp32, Precision::bf16}) {
    PrecisionScope scope(precision);
    const std::string what = precision_name(precision);
    models::DiffusionModel model(perturbed_unet(lethe::testing::tiny_unet_config(), 4, 0.1),
                                 models::TokenEncoder{nullptr}, diffusion::ScheduleConfig{});
    const Inputs inputs = random_inputs(4, 3);
    const at::Tensor weight = at::randn({4, 1, 8, 8}, at::make_generator<at::CPUGeneratorImpl>(17));
    std::vector<models::Conditioning> conditionings(inputs.contexts.begin(), inputs.contexts.end());
    const std::vector<at::Tensor> outputs = model.predict_each(inputs.x, inputs.t, conditionings);
    ASSERT_EQ(outputs.size(), 3u);
    const auto parameters = model.unet()->parameters();
    for (size_t k = 0; k < 3; ++k) {
      const at::Tensor alone = model.predict(inputs.x, inputs.t, conditionings[k]);
      EXPECT_EQ(outputs[k].scalar_type(), at::kFloat) << what;
      EXPECT_TRUE(at::equal(outputs[k], alone)) << what << ", conditioning " << k;
      std::vector<at::Tensor> got = torch::autograd::grad({(outputs[k] * weight).sum()}, parameters, {}, true);
      std::vector<at::Tensor> expected = torch::autograd::grad({(alone * weight).sum()}, parameters);
      expect_same_bits(got, expected, what + ", weight gradients from output " + std::to_string(k));
    }
  }
  models::DiffusionModel model(perturbed_unet(lethe::testing::tiny_unet_config(), 4, 0.1), models::TokenEncoder{nullptr},
                               diffusion::ScheduleConfig{});
  const Inputs inputs = random_inputs(4, 2);
  lethe::testing::expect_error(
      [&] { model.predict_each(inputs.x, inputs.t, {inputs.contexts[0], inputs.contexts[1].narrow(0, 0, 3)}); },
      {"predict_each", "conditionings of 4 rows", "got 3"});
}
