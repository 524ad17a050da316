// The trainer: bitwise determinism from the seed, resume reproducing the uninterrupted run,
// the NaN/Inf guard keeping the last good checkpoint, cancel leaving a checkpoint, and the
// learning-rate schedule.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "core/error.hpp"
#include "core/precision.hpp"
#include "io/safetensors.hpp"
#include "models/diffusion_model.hpp"
#include "test_helpers.hpp"
#include "unlearn/trainer.hpp"

using namespace lethe;
using lethe::testing::expect_error;
using lethe::testing::TempDir;

namespace {

// A model, its data and a context, ready for a Trainer.
struct Fixture {
  std::shared_ptr<models::DiffusionModel> model;
  unlearn::TaskData data;
  unlearn::ObjectiveContext context;

  explicit Fixture(uint64_t init_seed = 3) {
    models::UNet unet(lethe::testing::tiny_unet_config());
    unet->initialize(init_seed);
    model = std::make_shared<models::DiffusionModel>(unet, models::TokenEncoder{nullptr}, diffusion::ScheduleConfig{});
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
    data.retain.name = "retain set";
    data.retain.images = at::rand({24, 1, 8, 8}, g) * 2 - 1;
    data.retain.masks = at::ones({24, 1, 8, 8});
    data.retain.conditioning = at::randn({24, 3, 8}, g);
    context.model = model.get();
    context.schedule = &model->schedule();
    context.data = &data;
  }
  unlearn::NamedTensors parameters() {
    unlearn::NamedTensors out;
    for (const auto& item : model->unet()->named_parameters()) out.emplace_back(item.key(), item.value());
    return out;
  }
  std::map<std::string, at::Tensor> weights() { return model->weights(); }
};

unlearn::TrainerConfig small_config(int64_t steps) {
  unlearn::TrainerConfig config;
  config.retain_caption_dropout = 0.0;  // the fixture has no empty prompt's context
  config.optimizer.weight_decay = 1e-2;
  config.steps = steps;
  config.batch_size = 4;
  config.gradient_accumulation = 2;
  config.seed = 5;
  config.ema_decay = 0.9;
  config.optimizer.learning_rate = 1e-3;
  config.optimizer.lr_schedule = "cosine";
  config.optimizer.warmup_steps = 2;
  return config;
}

void expect_same_weights(const std::map<std::string, at::Tensor>& a, const std::map<std::string, at::Tensor>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [key, tensor] : a) EXPECT_TRUE(at::equal(tensor, b.at(key))) << key;
}

// Denoises the retain set; with `fail_at` >= 0 it throws halfway through that step, after it
// has drawn its batch, timesteps and noise (a crash in the middle of a step).
class FailsMidStep : public unlearn::Objective {
 public:
  explicit FailsMidStep(int64_t fail_at) : fail_at_(fail_at) {}
  std::string name() const override { return "fails_mid_step"; }
  nlohmann::json config_json() const override { return nlohmann::json::object(); }
  unlearn::LossTerms micro_step(unlearn::ObjectiveContext& context) override {
    auto batch = context.next_retain();
    at::Tensor t = context.training_timesteps(batch.size());
    at::Tensor noise = at::randn(batch.images.sizes(), context.generator);
    if (context.step == fail_at_) throw Error("disk went away");
    at::Tensor loss = (context.model->predict(batch.images + 0.1 * noise, t, batch.conditioning) - noise).pow(2).mean();
    loss.backward();
    return {{"loss", loss.item<double>()}};
  }

 private:
  int64_t fail_at_;
};

// Denoises the retain set through ObjectiveContext::backward; at step `at` the loss is multiplied
// by `factor`: NaN exercises the guard; 1e36 is finite, but its fp16 loss-scaled backward overflows.
class LossTimesAtStep : public unlearn::Objective {
 public:
  LossTimesAtStep(int64_t at, double factor) : at_(at), factor_(factor) {}
  std::string name() const override { return "loss_times_at_step"; }
  nlohmann::json config_json() const override { return {{"at", at_}, {"factor", std::isnan(factor_) ? -1.0 : factor_}}; }
  unlearn::LossTerms micro_step(unlearn::ObjectiveContext& context) override {
    auto batch = context.next_retain();
    at::Tensor t = context.training_timesteps(batch.size());
    at::Tensor noise = at::randn(batch.images.sizes(), context.generator);
    at::Tensor loss = (context.model->predict(batch.images + 0.1 * noise, t, batch.conditioning) - noise).pow(2).mean();
    if (context.step == at_) loss = loss * factor_;
    loss = loss / static_cast<double>(context.accumulation_steps);
    context.backward(loss);
    return {{"poisoned", loss.item<double>()}};
  }

 private:
  int64_t at_;
  double factor_;
};

}  // namespace

TEST(Trainer, AStepThatFailsHalfwayIsCheckpointedAsNotBegun) {
  TempDir dir;
  Fixture straight;
  FailsMidStep never(-1);
  unlearn::Trainer(small_config(6), straight.parameters(), never, straight.context).run("");
  Fixture interrupted;
  const auto checkpoint = dir / "c.safetensors";
  FailsMidStep once(3);
  expect_error([&] { unlearn::Trainer(small_config(6), interrupted.parameters(), once, interrupted.context).run(checkpoint); },
               {"disk went away"});
  EXPECT_EQ(io::SafetensorsFile::open(checkpoint).metadata().at("step"), "3");
  Fixture resumed(/*init_seed=*/99);
  unlearn::Trainer(small_config(6), resumed.parameters(), never, resumed.context).run(checkpoint);
  expect_same_weights(straight.weights(), resumed.weights());
}

TEST(Trainer, SameSeedGivesBitwiseIdenticalWeights) {
  std::map<std::string, at::Tensor> results[2];
  for (int run = 0; run < 2; ++run) {
    Fixture f;
    auto objective = unlearn::make_objective("denoise");
    unlearn::Trainer trainer(small_config(5), f.parameters(), *objective, f.context);
    auto outcome = trainer.run("");
    EXPECT_EQ(outcome.steps_done, 5);
    EXPECT_TRUE(outcome.finished);
    results[run] = f.weights();
  }
  expect_same_weights(results[0], results[1]);
  Fixture untouched;
  bool changed = false;
  for (const auto& [key, tensor] : untouched.weights()) changed = changed || !at::equal(tensor, results[0].at(key));
  EXPECT_TRUE(changed);
}

TEST(Trainer, StopAndResumeEqualsUninterruptedRun) {
  TempDir dir;
  Fixture straight;
  auto objective = unlearn::make_objective("denoise");
  unlearn::Trainer(small_config(7), straight.parameters(), *objective, straight.context).run("");

  Fixture interrupted;
  const auto checkpoint = dir / "run.checkpoint.safetensors";
  {
    unlearn::Trainer first(small_config(7), interrupted.parameters(), *objective, interrupted.context);
    auto outcome = first.run(checkpoint, {}, true, /*stop_after=*/3);
    EXPECT_EQ(outcome.steps_done, 3);
    EXPECT_FALSE(outcome.finished);
  }
  ASSERT_TRUE(std::filesystem::exists(checkpoint));
  Fixture resumed(/*init_seed=*/99);  // different initial weights: the checkpoint must override them
  unlearn::Trainer second(small_config(7), resumed.parameters(), *objective, resumed.context);
  auto outcome = second.run(checkpoint);
  EXPECT_TRUE(outcome.resumed);
  EXPECT_EQ(outcome.steps_done, 7);
  EXPECT_EQ(outcome.history.size(), 7u);
  expect_same_weights(straight.weights(), resumed.weights());
}

// Mixed precision is as reproducible as fp32 within one precision and machine: the same seed
// gives the same weights bit for bit, and a stop and resume continues exactly.
TEST(Trainer, Bf16RunsAreBitwiseReproducibleAndResumeExactly) {
  const PrecisionScope bf16(Precision::bf16);
  TempDir dir;
  auto objective = unlearn::make_objective("denoise");
  Fixture straight, again;
  unlearn::Trainer(small_config(6), straight.parameters(), *objective, straight.context).run("");
  unlearn::Trainer(small_config(6), again.parameters(), *objective, again.context).run("");
  expect_same_weights(straight.weights(), again.weights());

  Fixture interrupted;
  const auto checkpoint = dir / "bf16.checkpoint.safetensors";
  unlearn::Trainer(small_config(6), interrupted.parameters(), *objective, interrupted.context)
      .run(checkpoint, {}, true, /*stop_after=*/2);
  Fixture resumed(/*init_seed=*/99);
  unlearn::Trainer(small_config(6), resumed.parameters(), *objective, resumed.context).run(checkpoint);
  expect_same_weights(straight.weights(), resumed.weights());

  Fixture fp32;  // and it is another computation than fp32's
  {
    const PrecisionScope full(Precision::fp32);
    unlearn::Trainer(small_config(6), fp32.parameters(), *objective, fp32.context).run("");
  }
  bool differs = false;
  for (const auto& [key, tensor] : fp32.weights()) differs = differs || !at::equal(tensor, straight.weights().at(key));
  EXPECT_TRUE(differs);
}

// fp16 trains with dynamic loss scaling (core/loss_scaling.hpp): the losses are scaled by 2^16,
// a step whose gradients overflow changes nothing (weights, AdamW state, EMA) and halves the
// scale, and the scale is checkpointed, so a resume continues the same run bit for bit.
TEST(Trainer, Fp16ScalesTheLossSkipsAnOverflowedStepAndResumesExactly) {
  const PrecisionScope fp16(Precision::fp16);
  TempDir dir;
  LossTimesAtStep objective(3, 1e36);
  const auto config = small_config(6);
  Fixture straight, again;
  const auto outcome = unlearn::Trainer(config, straight.parameters(), objective, straight.context).run("");
  unlearn::Trainer(config, again.parameters(), objective, again.context).run("");
  expect_same_weights(straight.weights(), again.weights());
  ASSERT_EQ(outcome.history.size(), 6u);
  for (size_t step = 0; step < 6; ++step) {
    const auto& terms = outcome.history[step];
    EXPECT_EQ(terms.at("loss_scale"), step <= 3 ? 65536.0 : 32768.0) << step;  // the scale the step ran at
    EXPECT_EQ(terms.count("overflow_skipped"), step == 3 ? 1u : 0u) << step;
    EXPECT_EQ(terms.count("grad_norm"), step == 3 ? 0u : 1u) << step;
  }

  // The skipped step changed nothing: the states after 3 and after 4 steps hold the same
  // weights, EMA and AdamW moments and step count; only the scale (and the draws) moved on.
  Fixture three, four;
  const auto after_three = dir / "three.safetensors", after_four = dir / "four.safetensors";
  unlearn::Trainer(config, three.parameters(), objective, three.context).run(after_three, {}, true, /*stop_after=*/3);
  unlearn::Trainer(config, four.parameters(), objective, four.context).run(after_four, {}, true, /*stop_after=*/4);
  const auto a = io::SafetensorsFile::open(after_three), b = io::SafetensorsFile::open(after_four);
  int compared = 0;
  for (const auto& name : a.names()) {
    if (name.rfind("rng/", 0) == 0) continue;
    EXPECT_TRUE(at::equal(a.tensor(name), b.tensor(name))) << name;
    ++compared;
  }
  EXPECT_GT(compared, 3 * static_cast<int>(straight.parameters().size()));  // param/, ema/ and adam/ tensors
  EXPECT_EQ(a.metadata().at("adam_step"), b.metadata().at("adam_step"));
  EXPECT_EQ(nlohmann::json::parse(a.metadata().at("loss_scaler")).at("scale"), 65536.0);
  EXPECT_EQ(nlohmann::json::parse(b.metadata().at("loss_scaler")).at("scale"), 32768.0);

  Fixture resumed(/*init_seed=*/99);
  EXPECT_TRUE(unlearn::Trainer(config, resumed.parameters(), objective, resumed.context).run(after_four).resumed);
  expect_same_weights(straight.weights(), resumed.weights());

  // A loss that is itself infinite is no overflow of the scale: the guard stops and says what to do.
  Fixture poisoned;
  LossTimesAtStep nan(1, std::nan(""));
  expect_error([&] { unlearn::Trainer(config, poisoned.parameters(), nan, poisoned.context).run(""); },
               {"step 1", "'poisoned'", "fp16", "bf16 or fp32"});
}

// A concept task on the fixture: anchor images with their own conditioning, a target
// conditioning, and a frozen reference copy of the starting model.
struct ConceptFixture : Fixture {
  std::shared_ptr<models::DiffusionModel> reference;
  explicit ConceptFixture(uint64_t init_seed = 3) : Fixture(init_seed) {
    models::UNet unet(lethe::testing::tiny_unet_config());
    unet->initialize(3);
    reference = std::make_shared<models::DiffusionModel>(unet, models::TokenEncoder{nullptr}, diffusion::ScheduleConfig{});
    data.anchor = data.retain;
    data.anchor.name = "anchor set";
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(12);
    data.target_conditioning = at::randn({1, 3, 8}, g);
    context.reference = reference.get();
  }
};

nlohmann::json variational_js() {
  return {{"form", "variational"}, {"divergence", "js"}, {"critic_channels", 4}, {"critic_layers", 1},
          {"critic_warmup_steps", 2}};
}

TEST(Trainer, TheVariationalCriticSurvivesAResumeBitwise) {
  TempDir dir;
  ConceptFixture straight;
  auto straight_objective = unlearn::make_objective("f_divergence", variational_js());
  unlearn::Trainer(small_config(5), straight.parameters(), *straight_objective, straight.context).run("");
  // Warm-up: 2 critic-only steps, then one critic step per optimizer step.
  EXPECT_EQ(straight_objective->state().at("critic_steps"), 7);

  ConceptFixture interrupted;
  const auto checkpoint = dir / "run.checkpoint.safetensors";
  {
    auto objective = unlearn::make_objective("f_divergence", variational_js());
    unlearn::Trainer first(small_config(5), interrupted.parameters(), *objective, interrupted.context);
    first.run(checkpoint, {}, true, /*stop_after=*/2);
  }
  const auto saved = io::SafetensorsFile::open(checkpoint);
  EXPECT_TRUE(saved.contains("objective/critic/0.weight"));
  EXPECT_TRUE(saved.contains("objective/critic/0.u"));
  EXPECT_TRUE(saved.contains("objective/critic_adam/exp_avg/0.weight"));
  ConceptFixture resumed(/*init_seed=*/99);
  auto resumed_objective = unlearn::make_objective("f_divergence", variational_js());
  unlearn::Trainer second(small_config(5), resumed.parameters(), *resumed_objective, resumed.context);
  EXPECT_TRUE(second.run(checkpoint).resumed);
  expect_same_weights(straight.weights(), resumed.weights());
  expect_same_weights(straight_objective->tensor_state(), resumed_objective->tensor_state());
  EXPECT_EQ(straight_objective->state(), resumed_objective->state());
}

// ESD trains the prediction under the erased concept towards the frozen model's negatively
// guided one, eps_ref(x, 0) - eta (eps_ref(x, c*) - eps_ref(x, 0)), at x_t the model draws.
TEST(Objectives, EsdPullsTheConceptTowardsTheNegativelyGuidedPrediction) {
  for (const std::string x_t : {"sampled", "anchor"}) {
    ConceptFixture fixture;
    // The initialised UNet's output layer is zero (LDM's zero module); give both copies the
    // same non-zero weights so that predictions differ by condition.
    for (auto* model : {fixture.model.get(), fixture.reference.get()}) {
      at::Generator same = at::make_generator<at::CPUGeneratorImpl>(21);
      at::NoGradGuard no_grad;
      for (auto& item : model->unet()->named_parameters()) item.value().add_(at::randn(item.value().sizes(), same) * 0.05);
    }
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(13);
    fixture.data.anchor.empty_conditioning = at::randn({1, 3, 8}, g);
    const at::Tensor probe = at::randn({4, 1, 8, 8}, g), t = at::full({4}, 400, at::kLong);
    const models::Conditioning erased = fixture.data.target_conditioning.expand(4);
    const models::Conditioning empty = fixture.data.anchor.empty_conditioning.expand(4);
    const double eta = 2.0;
    auto gap = [&] {
      at::NoGradGuard no_grad;
      at::Tensor e0 = fixture.reference->predict(probe, t, empty), ec = fixture.reference->predict(probe, t, erased);
      return (fixture.model->predict(probe, t, erased) - (e0 - eta * (ec - e0))).pow(2).mean().item<double>();
    };
    const double before = gap();
    auto objective = unlearn::make_objective("esd", {{"negative_guidance", eta}, {"x_t", x_t}, {"sampling_steps", 5}});
    unlearn::TrainerConfig config = small_config(25);
    config.optimizer.learning_rate = 3e-4;
    config.ema_decay = 0.0;
    config.gradient_accumulation = 1;
    auto outcome = unlearn::Trainer(config, fixture.parameters(), *objective, fixture.context).run("");
    EXPECT_LT(gap(), 0.5 * before) << x_t;
    if (x_t == "sampled")  // x_t after k of 5 DDIM steps sits on the grid 801, 601, ..., 1
      for (const auto& terms : outcome.history) EXPECT_EQ(std::fmod(terms.at("t") - 1, 200.0), 0.0) << terms.at("t");
  }
  expect_error([] { unlearn::make_objective("esd", {{"x_t", "noise"}}); }, {".x_t: expected sampled or anchor"});
}

TEST(Objectives, EachFormOfTheFDivergenceNamesItsOwnDivergences) {
  expect_error([] { unlearn::make_objective("f_divergence", {{"form", "variational"}, {"divergence", "mse"}}); },
               {"'mse' has no variational form", "tv"});
  expect_error([] { unlearn::make_objective("f_divergence", {{"divergence", "tv"}}); }, {"'tv' has no closed form", "alpha"});
  expect_error([] { unlearn::make_objective("f_divergence", {{"form", "critic"}}); }, {".form: expected closed or variational"});
}

TEST(Trainer, NanStopsWithTheStepAndTermAndKeepsTheLastGoodCheckpoint) {
  TempDir dir;
  Fixture f;
  LossTimesAtStep objective(2, std::nan(""));
  auto config = small_config(6);
  config.gradient_accumulation = 1;
  const auto checkpoint = dir / "nan.checkpoint.safetensors";
  unlearn::Trainer trainer(config, f.parameters(), objective, f.context);
  expect_error([&] { trainer.run(checkpoint); }, {"step 2", "'poisoned'", "nan", "last good state"});
  auto file = io::SafetensorsFile::open(checkpoint);
  EXPECT_EQ(file.metadata().at("step"), "2");
  // The saved weights are finite (the state after step 1).
  for (const auto& name : file.names())
    if (name.rfind("param/", 0) == 0) EXPECT_TRUE(at::isfinite(file.tensor(name)).all().item<bool>()) << name;
}

TEST(Trainer, CancelLeavesAResumableCheckpoint) {
  TempDir dir;
  Fixture f;
  auto objective = unlearn::make_objective("denoise");
  const auto checkpoint = dir / "cancel.checkpoint.safetensors";
  unlearn::Trainer trainer(small_config(8), f.parameters(), *objective, f.context);
  int64_t seen = 0;
  EXPECT_THROW(trainer.run(checkpoint,
                           [&](const ProgressEvent& event) {
                             seen = event.step;
                             if (event.step == 3) throw Cancelled("user pressed cancel");
                           }),
               Cancelled);
  EXPECT_EQ(seen, 3);
  EXPECT_EQ(io::SafetensorsFile::open(checkpoint).metadata().at("step"), "3");
  Fixture resumed;
  unlearn::Trainer again(small_config(8), resumed.parameters(), *objective, resumed.context);
  EXPECT_EQ(again.run(checkpoint).steps_done, 8);
}

TEST(Trainer, CheckpointFromAnotherConfigurationIsRefused) {
  TempDir dir;
  Fixture f;
  auto objective = unlearn::make_objective("denoise");
  const auto checkpoint = dir / "c.safetensors";
  unlearn::Trainer(small_config(4), f.parameters(), *objective, f.context).run(checkpoint, {}, true, 2);
  auto other = small_config(4);
  other.optimizer.learning_rate = 5e-4;
  Fixture g;
  unlearn::Trainer trainer(other, g.parameters(), *objective, g.context);
  expect_error([&] { trainer.run(checkpoint); }, {"different run"});
}

TEST(Trainer, AMismatchNamesWhatDiffersInAFewWords) {
  TempDir dir;
  Fixture f;
  auto objective = unlearn::make_objective("denoise");
  const auto checkpoint = dir / "c.safetensors";
  unlearn::Trainer first(small_config(4), f.parameters(), *objective, f.context);
  first.set_run_identity({{"model", std::string(64, 'a')}, {"timesteps", {{"t_min", 250}}}});
  first.run(checkpoint, {}, true, 2);
  Fixture g;
  unlearn::Trainer second(small_config(4), g.parameters(), *objective, g.context);
  second.set_run_identity({{"model", std::string(64, 'b')}, {"timesteps", {{"t_min", 300}}}});
  try {
    second.run(checkpoint);
    FAIL() << "expected a mismatch";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("run.model"), std::string::npos) << message;
    EXPECT_NE(message.find("run.timesteps.t_min (was 250, now 300)"), std::string::npos) << message;
    EXPECT_LT(message.size(), 400u) << "never the parameter list: " << message;
  }
}

TEST(Trainer, TheFinishedStateIsCheckpointedUntilTheCallerSavesIt) {
  TempDir dir;
  Fixture f;
  auto objective = unlearn::make_objective("denoise");
  const auto checkpoint = dir / "c.safetensors";
  auto config = small_config(3);
  config.checkpoint_seconds = 0;  // by steps and at the end only
  unlearn::Trainer(config, f.parameters(), *objective, f.context).run(checkpoint);
  ASSERT_TRUE(std::filesystem::exists(checkpoint));
  EXPECT_EQ(io::SafetensorsFile::open(checkpoint).metadata().at("step"), "3");
  Fixture g(/*init_seed=*/99);
  auto outcome = unlearn::Trainer(config, g.parameters(), *objective, g.context).run(checkpoint);
  EXPECT_EQ(outcome.steps_done, 3);  // nothing left to train: the state is restored as it was
  expect_same_weights(f.weights(), g.weights());
}

TEST(Trainer, ProgressReportsLossTermsAndTiming) {
  Fixture f;
  auto objective = unlearn::make_objective("denoise");
  std::vector<ProgressEvent> events;
  unlearn::Trainer(small_config(3), f.parameters(), *objective, f.context).run("", [&](const ProgressEvent& e) {
    events.push_back(e);
  });
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events.back().step, 3);
  EXPECT_EQ(events.back().total, 3);
  EXPECT_TRUE(events.back().values.count("loss"));
  EXPECT_TRUE(events.back().values.count("grad_norm"));
  EXPECT_GT(events.back().seconds_per_step, 0.0);
}

TEST(OptimizerConfig, WarmupThenCosineMatchesTheClosedForm) {
  unlearn::OptimizerConfig config;
  config.learning_rate = 1.0;
  config.warmup_steps = 4;
  config.lr_schedule = "cosine";
  config.min_lr_ratio = 0.1;
  EXPECT_DOUBLE_EQ(config.rate_at(0, 104), 0.25);
  EXPECT_DOUBLE_EQ(config.rate_at(3, 104), 1.0);
  EXPECT_DOUBLE_EQ(config.rate_at(4, 104), 1.0);
  EXPECT_NEAR(config.rate_at(54, 104), 0.1 + 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(config.rate_at(104, 104), 0.1, 1e-12);
  config.lr_schedule = "constant";
  EXPECT_DOUBLE_EQ(config.rate_at(50, 104), 1.0);
}

TEST(Objectives, RegistryRejectsUnknownNamesAndKeys) {
  expect_error([] { unlearn::make_objective("sis"); }, {"unknown objective 'sis'", "denoise"});
  expect_error([] { unlearn::make_objective("denoise", {{"reductio", "mean"}}); }, {"unknown key 'reductio'", "reduction"});
  expect_error([] { unlearn::make_objective("npo", {{"beta_k", 0}}, "run.json: objective_config"); },
               {"run.json: objective_config.beta_k: expected > 0, got 0"});
  EXPECT_EQ(unlearn::make_objective("naive_deletion")->config_json().at("reduction"), "sum");
}

// What each objective asks the run for: {forget, retain, anchor, reference}.
TEST(Objectives, EachAsksForItsSetsAndTheReference) {
  const std::map<std::string, std::array<bool, 4>> expected = {
      {"siss", {true, true, false, false}},       {"siss_no_is", {true, true, false, false}},
      {"neggrad", {true, false, false, false}},   {"erasediff", {true, true, false, false}},
      {"npo", {true, false, false, true}},        {"dpo", {true, true, false, true}},
      {"f_divergence", {false, false, true, true}}, {"denoise", {false, true, false, false}},
      {"naive_deletion", {false, true, false, false}}, {"esd", {false, false, true, true}},
      {"uce", {false, false, true, false}}};
  unlearn::register_builtin_objectives();
  EXPECT_EQ(expected.size(), unlearn::objective_names().size());
  for (const auto& [name, needs] : expected) {
    auto objective = unlearn::make_objective(name);
    const std::array<bool, 4> got = {objective->needs_forget(), objective->needs_retain(), objective->needs_anchor(),
                                     objective->needs_reference()};
    EXPECT_EQ(got, needs) << name;
  }
  EXPECT_TRUE(unlearn::make_objective("npo", {{"retain_weight", 0.5}})->needs_retain());
  EXPECT_TRUE(unlearn::make_objective("denoise", {{"set", "forget"}})->needs_forget());
  EXPECT_FALSE(unlearn::make_objective("denoise", {{"set", "forget"}})->needs_retain());
}

// Retain caption dropout: about the given share of retain captions become "", the same
// seed gives the same draws, p = 0 draws nothing; precomputed conditioning drops to the
// empty prompt's context and is refused without one.
TEST(RetainCaptionDropout, DropsTheGivenShareDeterministically) {
  unlearn::TaskData data;
  data.retain.name = "retain set";
  data.retain.images = at::zeros({400, 1, 4, 4});
  data.retain.masks = at::ones({400, 1, 4, 4});
  data.retain.captions.assign(400, "a caption");
  auto retain_batch = [&](double p, uint64_t seed) {
    unlearn::ObjectiveContext context;
    context.data = &data;
    context.batch_size = 400;
    context.generator = at::make_generator<at::CPUGeneratorImpl>(seed);
    context.reset_streams(seed);
    context.retain_caption_dropout = p;
    return context.next_retain();
  };
  auto draw = [&](double p, uint64_t seed) { return retain_batch(p, seed).captions; };
  auto empties = [](const std::vector<std::string>& captions) {
    return std::count(captions.begin(), captions.end(), std::string());
  };
  const auto dropped = draw(0.25, 4);
  EXPECT_GT(empties(dropped), 60);  // Binomial(400, 0.25): mean 100, sd 8.7
  EXPECT_LT(empties(dropped), 140);
  EXPECT_EQ(dropped, draw(0.25, 4));
  EXPECT_EQ(empties(draw(0.0, 4)), 0);

  // Precomputed conditioning: dropped rows take the empty prompt's context, which must be given.
  data.retain.captions.clear();
  data.retain.conditioning = at::ones({400, 3, 8});
  expect_error([&] { draw(0.25, 4); }, {"retain_caption_dropout", "no empty prompt's conditioning"});
  EXPECT_NO_THROW(draw(0.0, 4));
  data.retain.empty_conditioning = at::zeros({1, 3, 8});
  auto dropped_rows = [&](double p, uint64_t seed) {
    at::Tensor contexts = retain_batch(p, seed).conditioning.context;  // [400, 3, 8]
    EXPECT_TRUE(at::logical_or(contexts.eq(0).all(2).all(1), contexts.eq(1).all(2).all(1)).all().item<bool>());
    return contexts.eq(0).all(2).all(1);  // [400] true where dropped
  };
  const at::Tensor rows = dropped_rows(0.25, 4);
  EXPECT_GT(rows.sum().item<int64_t>(), 60);
  EXPECT_LT(rows.sum().item<int64_t>(), 140);
  EXPECT_TRUE(at::equal(rows, dropped_rows(0.25, 4)));
  EXPECT_EQ(dropped_rows(0.0, 4).sum().item<int64_t>(), 0);
  data.retain.empty_conditioning = at::zeros({1, 4, 8});
  expect_error([&] { data.retain.validate(); }, {"retain set", "empty prompt's context must be [1, 3, 8]", "[1, 4, 8]"});
}
