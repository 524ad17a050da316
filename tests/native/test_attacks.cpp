// The attacks of eval/attacks.hpp: the soft-prompt path equals the encoder, the prompt
// attack's surrogate loss against a per-draw loop (values) and central differences in
// float64 (gradients), and the two attacks' bookkeeping with a scripted judge.
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/csrc/autograd/autograd.h>

#include "core/error.hpp"
#include "eval/attacks.hpp"
#include "models/diffusion_model.hpp"
#include "test_helpers.hpp"

using namespace lethe;
using lethe::testing::expect_error;

namespace {

std::shared_ptr<models::DiffusionModel> captioned_tiny_model(uint64_t seed = 5) {
  models::UNet unet(lethe::testing::tiny_unet_config());
  unet->initialize(seed);
  {  // initialize() zeroes the output convolution (the prediction would ignore the context)
    at::NoGradGuard no_grad;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed + 2);
    for (at::Tensor& parameter : unet->parameters()) parameter.add_(at::randn(parameter.sizes(), g) * 0.1);
  }
  models::TokenEncoderConfig text;
  text.vocabulary = {"<pad>", "artist", "piece_a", "piece_b", "piece_c", "piece_d", "top"};
  text.max_tokens = 3;
  text.dim = 8;
  models::TokenEncoder encoder(text);
  encoder->initialize(seed + 1);
  diffusion::ScheduleConfig schedule;
  schedule.num_train_timesteps = 100;
  return std::make_shared<models::DiffusionModel>(unet, encoder, schedule);
}

eval::AttackTargets targets(int64_t count = 4) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(17);
  const std::vector<std::string> pieces = {"piece_a", "piece_b", "piece_c", "piece_d"};
  eval::AttackTargets out;
  out.images = at::rand({count, 1, 8, 8}, g);
  for (int64_t i = 0; i < count; ++i) out.captions.push_back("artist " + pieces[i % 4] + " top");
  return out;
}

diffusion::SamplingOptions quick_sampling() {
  diffusion::SamplingOptions options;
  options.steps = 2;
  options.guidance = 2.0;
  return options;
}

eval::AttackConfig quick_attacks() {
  eval::AttackConfig config;
  config.prompt_steps = 6;
  config.prompt_noise_draws = 3;
  config.prompt_samples = 2;
  config.relearn_max_steps = 7;
  config.relearn_check_every = 3;
  config.relearn_batch_size = 2;
  config.relearn_samples = 2;
  return config;
}

// A judge that reports the success rates of a script, one per call (all samples of a call
// succeed or fail in the given proportion), and records the targets it was asked about.
struct ScriptedJudge {
  std::vector<double> rates;
  std::shared_ptr<std::vector<at::Tensor>> seen = std::make_shared<std::vector<at::Tensor>>();
  std::shared_ptr<std::vector<at::Tensor>> drawn = std::make_shared<std::vector<at::Tensor>>();
  std::pair<at::Tensor, at::Tensor> operator()(const at::Tensor& samples, const at::Tensor& target) const {
    const double rate = rates[std::min(seen->size(), rates.size() - 1)];
    seen->push_back(target.clone());
    drawn->push_back(samples.clone());
    const int64_t m = samples.size(0);
    at::Tensor success = at::arange(m, at::kDouble) < std::round(rate * static_cast<double>(m));
    return {success, success.to(at::kFloat)};
  }
};

}  // namespace

TEST(Attacks, SoftPromptPathEqualsTheEncoder) {
  auto model = captioned_tiny_model();
  at::Tensor ids = model->text_encoder()->tokenize({"artist piece_a top", "piece_b", ""});
  at::Tensor direct = model->text_encoder()->forward(ids);
  at::Tensor split = model->text_encoder()->encode_embeddings(model->text_encoder()->embed(ids));
  EXPECT_TRUE(at::equal(direct, split));
  expect_error([&] { model->text_encoder()->encode_embeddings(at::zeros({1, 4, 8})); },
               {"token encoder", "token embeddings [B, 3, 8]", "[1, 4, 8]"});
}

TEST(Attacks, SurrogateLossMatchesAPerDrawLoop) {
  auto model = captioned_tiny_model();
  const auto data = targets(3);
  const int64_t draws = 2;
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor images = data.images * 2 - 1;
  at::Tensor t = at::randint(100, {3 * draws}, g, at::kLong);
  at::Tensor noise = at::randn({3 * draws, 1, 8, 8}, g);
  at::NoGradGuard no_grad;
  at::Tensor embeddings = model->text_encoder()->embed(model->text_encoder()->tokenize(data.captions));
  at::Tensor loss = eval::prompt_surrogate_loss(*model, embeddings, images, t, noise);  // [3]
  ASSERT_EQ(loss.sizes(), at::IntArrayRef({3}));
  for (int64_t i = 0; i < 3; ++i) {
    double total = 0;
    for (int64_t d = 0; d < draws; ++d) {
      const int64_t row = i * draws + d;
      at::Tensor step = t.narrow(0, row, 1);
      at::Tensor x0 = images.narrow(0, i, 1), eps = noise.narrow(0, row, 1);
      at::Tensor x_t = model->schedule().add_noise(x0, eps, step);
      at::Tensor prediction = model->predict(x_t, step, model->context_for({data.captions[i]}));
      total += (prediction - eps).pow(2).mean().item<double>();  // epsilon model: the target is the noise
    }
    EXPECT_NEAR(loss[i].item<double>(), total / draws, 1e-6);
  }
}

TEST(Attacks, SurrogateLossGradientMatchesCentralDifferences) {
  auto model = captioned_tiny_model();
  model->unet()->to(at::kDouble);
  model->text_encoder()->to(at::kDouble);
  const auto data = targets(2);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(4);
  at::Tensor images = (data.images * 2 - 1).to(at::kDouble);
  at::Tensor t = at::randint(100, {4}, g, at::kLong);
  at::Tensor noise = at::randn({4, 1, 8, 8}, g).to(at::kDouble);
  at::Tensor embeddings;
  {
    at::NoGradGuard no_grad;
    embeddings = model->text_encoder()->embed(model->text_encoder()->tokenize(data.captions)).clone();  // [2, 3, 8]
  }
  embeddings.set_requires_grad(true);
  at::Tensor loss = eval::prompt_surrogate_loss(*model, embeddings, images, t, noise).sum();
  at::Tensor gradient = torch::autograd::grad({loss}, {embeddings})[0];
  ASSERT_GT(gradient.abs().max().item<double>(), 1e-3);  // the loss depends on the prompt
  at::NoGradGuard no_grad;
  const double h = 1e-6;
  for (const auto& [i, l, d] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{{0, 0, 0}, {0, 2, 5}, {1, 1, 3}, {1, 2, 7}}) {
    at::Tensor plus = embeddings.detach().clone(), minus = embeddings.detach().clone();
    plus[i][l][d] += h;
    minus[i][l][d] -= h;
    const double numeric = (eval::prompt_surrogate_loss(*model, plus, images, t, noise).sum().item<double>() -
                            eval::prompt_surrogate_loss(*model, minus, images, t, noise).sum().item<double>()) /
                           (2 * h);
    EXPECT_NEAR(gradient[i][l][d].item<double>(), numeric, 1e-6 * std::max(1.0, std::abs(numeric)))
        << "at [" << i << ", " << l << ", " << d << "]";
  }
}

TEST(Attacks, PromptAttackLowersItsLossAndLeavesTheModelUntouched) {
  auto model = captioned_tiny_model();
  const std::string before = model->weights_sha256();
  const auto data = targets(4);
  ScriptedJudge judge{{0.5}};
  auto config = quick_attacks();
  config.prompt_steps = 30;
  config.prompt_learning_rate = 0.1;
  const auto result = eval::prompt_attack(*model, data, judge, config, quick_sampling());
  EXPECT_EQ(model->weights_sha256(), before);
  EXPECT_EQ(result.samples.sizes(), at::IntArrayRef({8, 1, 8, 8}));
  EXPECT_EQ(result.embeddings.sizes(), at::IntArrayRef({4, 3, 8}));
  ASSERT_EQ(judge.seen->size(), 1u);
  EXPECT_TRUE(at::equal(judge.seen->front(), at::tensor({0, 0, 1, 1, 2, 2, 3, 3}, at::kLong)));
  double before_sum = 0, after_sum = 0;
  for (size_t i = 0; i < 4; ++i) before_sum += result.loss_before[i], after_sum += result.loss_after[i];
  EXPECT_LT(after_sum, before_sum);
  // Seeded: the same attack gives the same samples.
  const auto again = eval::prompt_attack(*model, data, judge, config, quick_sampling());
  EXPECT_TRUE(at::equal(result.samples, again.samples));
}

TEST(Attacks, RelearningStopsAtTheFirstCheckThatReachesTheReturnRate) {
  auto model = captioned_tiny_model();
  const std::string before = model->weights_sha256();
  ScriptedJudge judge{{0.0, 1.0 / 3.0, 0.5, 1.0}};  // of 6 held-out samples: 0, 2, 3, 6
  auto config = quick_attacks();  // checks at 0, 3, 6 (then 7, the budget's end)
  const auto result = eval::relearn_attack(*model, targets(5), judge, config, quick_sampling());
  EXPECT_EQ(model->weights_sha256(), before);
  EXPECT_EQ(result.relearn_targets, 2);
  EXPECT_EQ(result.held_out_targets, 3);
  EXPECT_EQ(result.steps, (std::vector<int64_t>{0, 3, 6}));
  ASSERT_EQ(result.success_rate.size(), 3u);
  EXPECT_EQ(result.success_rate[0], 0.0);
  EXPECT_NEAR(result.success_rate[1], 1.0 / 3.0, 1e-12);
  EXPECT_EQ(result.success_rate[2], 0.5);
  EXPECT_EQ(result.returned_at, 6);
  // The copy trained: the same seeded draws differ after 3 fine-tuning steps.
  EXPECT_FALSE(at::allclose((*judge.drawn)[0], (*judge.drawn)[1]));
  for (const at::Tensor& seen : *judge.seen)  // only the held-out targets are judged
    EXPECT_TRUE(at::equal(seen, at::tensor({2, 2, 3, 3, 4, 4}, at::kLong)));
}

TEST(Attacks, RelearningThatNeverReturnsReportsTheWholeBudget) {
  auto model = captioned_tiny_model();
  ScriptedJudge judge{{0.0, 0.25}};
  auto report = eval::run_attacks(*model, targets(4), judge, quick_attacks(), quick_sampling());
  EXPECT_TRUE(std::isnan(report.metrics.at("attack_relearn_steps")));
  EXPECT_EQ(report.details["relearn"]["returned"], false);
  EXPECT_TRUE(report.details["relearn"]["steps"].is_null());
  EXPECT_EQ(report.details["relearn"]["checked_steps"], nlohmann::json({0, 3, 6, 7}));
  EXPECT_EQ(report.details["relearn"]["budget"], 7);
  // The prompt attack's call was the judge's first: rate 0 over its 8 samples.
  EXPECT_EQ(report.metrics.at("attack_prompt_success_rate"), 0.0);
  EXPECT_EQ(report.details["prompt"]["per_target"].size(), 4u);
}

TEST(Attacks, ConfigErrorsNameTheField) {
  eval::AttackConfig config;
  config.relearn_return_rate = 1.5;
  expect_error([&] { config.validate("evaluation.attacks"); }, {"evaluation.attacks.relearn_return_rate", "(0, 1]", "1.5"});
  config = {};
  config.prompt_samples = 0;
  expect_error([&] { config.validate("evaluation.attacks"); }, {"evaluation.attacks.prompt_samples", ">= 1", "0"});
  auto model = captioned_tiny_model();
  expect_error([&] { eval::relearn_attack(*model, targets(1), ScriptedJudge{{0.0}}, quick_attacks(), quick_sampling()); },
               {"relearning attack", "at least 2 targets", "got 1"});
}
