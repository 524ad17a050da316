// The pieces the objectives share (unlearn/objectives/denoising_terms.hpp) against their
// closed forms, and the order in which they draw from the run's generator: the objectives'
// results depend on that order.
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "diffusion/schedule.hpp"
#include "test_helpers.hpp"
#include "unlearn/objectives/denoising_terms.hpp"

using namespace lethe;
using lethe::testing::expect_error;

namespace {

// Predicts half its input, whatever t and the context (a model whose output is easy to write down).
class HalfInput : public models::Denoiser {
 public:
  at::Tensor predict(const at::Tensor& x_t, const at::Tensor&, const models::Conditioning& conditioning) override {
    EXPECT_TRUE(conditioning.defined());
    return 0.5 * x_t;
  }
  std::vector<at::Tensor> trainable_parameters() override { return {}; }
};

struct Harness {
  diffusion::NoiseSchedule schedule;
  HalfInput model;
  unlearn::ObjectiveContext context;
  explicit Harness(uint64_t seed, const diffusion::ScheduleConfig& config = {}) : schedule(config) {
    context.model = &model;
    context.schedule = &schedule;
    context.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  }
};

at::Tensor images(int64_t count) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(99);
  return at::rand({count, 1, 4, 4}, g) * 2 - 1;  // [B, 1, 4, 4]
}

}  // namespace

TEST(DenoisingTerms, NoiseBatchDrawsEpsAfterTheCallersTimestepsAndNoisesByTheClosedForm) {
  for (const std::string prediction_type : {"epsilon", "v_prediction"}) {
    diffusion::ScheduleConfig config;
    config.prediction_type = prediction_type;
    Harness run(7, config);
    const at::Tensor x0 = images(3);
    const unlearn::NoisedBatch noisy = unlearn::noise_batch(run.context, x0, run.context.training_timesteps(3));

    at::Generator same = at::make_generator<at::CPUGeneratorImpl>(7);
    const at::Tensor t = at::randint(0, run.schedule.num_timesteps(), {3}, same, at::kLong);
    const at::Tensor eps = at::randn({3, 1, 4, 4}, same, at::kFloat);
    EXPECT_TRUE(at::equal(noisy.t, t));
    EXPECT_TRUE(at::equal(noisy.eps, eps));
    const at::Tensor alpha_bar = run.schedule.alphas_cumprod().to(at::kDouble).index_select(0, t).view({3, 1, 1, 1});
    const at::Tensor a = at::sqrt(alpha_bar), s = at::sqrt(1.0 - alpha_bar);                    // [3, 1, 1, 1]
    const at::Tensor x_t = a * x0.to(at::kDouble) + s * eps.to(at::kDouble);                   // [3, 1, 4, 4]
    const at::Tensor target =
        prediction_type == "epsilon" ? eps.to(at::kDouble) : a * eps.to(at::kDouble) - s * x0.to(at::kDouble);
    EXPECT_TRUE(at::allclose(noisy.x_t.to(at::kDouble), x_t, 1e-6, 1e-6)) << prediction_type;
    EXPECT_TRUE(at::allclose(noisy.target.to(at::kDouble), target, 1e-6, 1e-6)) << prediction_type;

    // noised() with the same eps and t is the same batch, and draws nothing.
    const at::Tensor state = run.context.generator.get_state();
    const unlearn::NoisedBatch again = unlearn::noised(run.schedule, x0, noisy.eps, noisy.t);
    EXPECT_TRUE(at::equal(again.x_t, noisy.x_t) && at::equal(again.target, noisy.target));
    EXPECT_TRUE(at::equal(run.context.generator.get_state(), state));
  }
}

TEST(DenoisingTerms, DenoisingErrorSumsOrAveragesEachSamplesSquaredError) {
  const at::Tensor prediction = at::arange(1, 5, at::kDouble).view({2, 2});  // any dtype: taken as float
  const at::Tensor target = at::zeros({2, 2});
  const at::Tensor sum = unlearn::denoising_error(prediction, target, unlearn::ErrorReduction::sum);
  const at::Tensor mean = unlearn::denoising_error(prediction, target, unlearn::ErrorReduction::mean);
  EXPECT_TRUE(at::equal(sum, at::tensor({5.0f, 25.0f})));   // 1 + 4, 9 + 16
  EXPECT_TRUE(at::equal(mean, at::tensor({2.5f, 12.5f})));
}

TEST(DenoisingTerms, RetainLossIsTheDenoisingErrorAtUniformTimestepsDrawnBeforeEps) {
  Harness run(5);
  unlearn::ExampleBatch batch;
  batch.images = images(4);
  batch.conditioning = at::zeros({4, 2, 8});  // contexts given: no caption draws
  const at::Tensor loss = unlearn::retain_loss(run.context, batch, unlearn::ErrorReduction::sum);

  at::Generator same = at::make_generator<at::CPUGeneratorImpl>(5);
  const at::Tensor t = at::randint(0, run.schedule.num_timesteps(), {4}, same, at::kLong);
  const at::Tensor eps = at::randn({4, 1, 4, 4}, same, at::kFloat);
  const at::Tensor x_t = run.schedule.add_noise(batch.images, eps, t);
  const double expected = (0.5 * x_t - eps).pow(2).sum({1, 2, 3}).mean().item<double>();
  EXPECT_DOUBLE_EQ(loss.item<double>(), expected);
}

TEST(DenoisingTerms, ForgetLossIsTheMaskedErrorWeightedByTheTimeWeight) {
  Harness run(1);
  const at::Tensor prediction = at::ones({2, 1, 2, 2}), target = at::zeros({2, 1, 2, 2});
  at::Tensor masks = at::ones({2, 1, 2, 2});
  masks[1].zero_();  // the second sample is masked out
  const at::Tensor t = at::zeros({2}, at::kLong);
  // No selections: weight 1, error sum_d (mask r)^2 = [4, 0], per element [1, 0].
  EXPECT_DOUBLE_EQ(unlearn::forget_loss(run.context, prediction, target, t, masks).item<double>(), 2.0);
  EXPECT_TRUE(at::equal(unlearn::selected_mean_error(run.context, prediction, target, masks, t), at::tensor({1.0f, 0.0f})));
}

TEST(DenoisingTerms, ReferencePredictionNeedsTheFrozenReference) {
  Harness run(1);
  const at::Tensor x_t = images(2), t = at::zeros({2}, at::kLong), c = at::zeros({2, 2, 8});
  expect_error([&] { unlearn::reference_predict(run.context, x_t, t, c); }, {"frozen reference model"});
  HalfInput reference;
  run.context.reference = &reference;
  const at::Tensor predicted = unlearn::reference_predict(run.context, x_t.requires_grad_(), t, c);
  EXPECT_FALSE(predicted.requires_grad());
  EXPECT_TRUE(at::equal(predicted, 0.5 * x_t.detach()));
}
