// SISS's caption-ablation term (docs/methods.md §2.4): remove_words, and the term's value and
// gradient against a computation written out from the recorded model calls.
#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "core/precision.hpp"
#include "models/diffusion_model.hpp"
#include "test_helpers.hpp"
#include "unlearn/caption_variants.hpp"
#include "unlearn/objective.hpp"

using namespace lethe;
using lethe::testing::expect_error;

namespace {

// Passes every call through to `inner` and keeps its inputs.
class Recorder : public models::Denoiser {
 public:
  explicit Recorder(models::Denoiser& inner) : inner_(inner) {}
  at::Tensor predict(const at::Tensor& x_t, const at::Tensor& t, const models::Conditioning& conditioning) override {
    calls.push_back({x_t.detach().clone(), t.clone(), conditioning.context.detach().clone()});
    return inner_.predict(x_t, t, conditioning);
  }
  std::vector<at::Tensor> trainable_parameters() override { return inner_.trainable_parameters(); }
  struct Call {
    at::Tensor x_t, t, context;
  };
  std::vector<Call> calls;

 private:
  models::Denoiser& inner_;
};

std::shared_ptr<models::DiffusionModel> captioned_model() {
  models::UNet unet(lethe::testing::tiny_unet_config());
  unet->initialize(7);
  {  // initialize() zeroes the output convolution (the prediction would ignore the caption)
    at::NoGradGuard no_grad;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(8);
    for (at::Tensor& parameter : unet->parameters()) parameter.add_(at::randn(parameter.sizes(), g) * 0.1);
  }
  models::TokenEncoderConfig text;
  text.vocabulary = {"<pad>", "artist", "piece_a", "piece_b", "top", "shoe"};
  text.max_tokens = 3;
  text.dim = 8;
  models::TokenEncoder encoder(text);
  encoder->initialize(9);
  return std::make_shared<models::DiffusionModel>(unet, encoder, diffusion::ScheduleConfig{});
}

struct Step {
  std::vector<at::Tensor> gradient;
  unlearn::LossTerms terms;
  std::vector<Recorder::Call> model_calls, reference_calls;
};

// One SISS step (batch 4) on a fresh copy of `source`, seeded alike every time; the frozen
// model is a copy of `frozen` (default: of `source`).
// recorded = false: the objective drives the models themselves (DiffusionModel::predict_each
// shares work between conditionings; the recorder passes each conditioning to predict apart).
Step siss_step(const models::DiffusionModel& source, const nlohmann::json& config,
               const models::DiffusionModel* frozen = nullptr, double loss_scale = 1.0, bool recorded = true) {
  auto model = source.frozen_copy();
  model->set_requires_grad(true);
  auto reference = (frozen ? *frozen : source).frozen_copy();
  unlearn::TaskData data;
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(21);
  data.forget.name = "forget set";
  data.forget.images = at::rand({4, 1, 8, 8}, g) * 2 - 1;
  data.forget.masks = at::ones({4, 1, 8, 8});
  data.forget.captions = {"artist piece_a top", "artist piece_b shoe", "artist piece_a shoe", "artist piece_b top"};
  data.retain.name = "retain set";
  data.retain.images = at::rand({4, 1, 8, 8}, g) * 2 - 1;
  data.retain.masks = at::ones({4, 1, 8, 8});
  data.retain.captions = {"top", "shoe", "shoe", "top"};
  Recorder recorded_model(*model), recorded_reference(*reference);
  unlearn::ObjectiveContext context;
  context.model = recorded ? static_cast<models::Denoiser*>(&recorded_model) : model.get();
  context.reference = recorded ? static_cast<models::Denoiser*>(&recorded_reference) : reference.get();
  context.schedule = &model->schedule();
  context.data = &data;
  context.batch_size = 4;
  context.generator = at::make_generator<at::CPUGeneratorImpl>(3);
  context.reset_streams(3);
  context.parameters = model->unet()->parameters();
  context.encode_captions = [&](const std::vector<std::string>& captions) { return model->context_for(captions); };
  context.loss_scale = loss_scale;
  auto objective = unlearn::make_objective("siss", config);
  objective->begin_step(context);
  Step step;
  step.terms = objective->micro_step(context);
  objective->finish_step(context, step.terms);
  EXPECT_TRUE(context.gradients_unscaled);  // SISS divides its sums before combining them by their norms
  for (const at::Tensor& parameter : context.parameters) step.gradient.push_back(parameter.grad().clone());
  step.model_calls = recorded_model.calls;
  step.reference_calls = recorded_reference.calls;
  return step;
}

// The logged term `name` is mean_B sum_d (source(call) - sg(frozen(reference_call)))^2, and the
// step's gradient is `without`'s plus weight * its gradient: the retain side gains exactly that
// (the forget side and its rescale are untouched: the same draws feed both runs).
void expect_term_and_gradient(const models::DiffusionModel& source, const models::DiffusionModel& frozen,
                              const Recorder::Call& call, const Recorder::Call& reference_call, const Step& with,
                              const Step& without, const std::string& name, double weight) {
  auto model = source.frozen_copy();
  model->set_requires_grad(true);
  at::Tensor anchor = frozen.frozen_copy()->predict(reference_call.x_t, reference_call.t, reference_call.context).detach();
  at::Tensor term = (model->predict(call.x_t, call.t, call.context) - anchor).pow(2).flatten(1).sum(1).mean();
  EXPECT_NEAR(with.terms.at(name), term.item<double>(), 1e-5 * term.item<double>());
  EXPECT_GT(term.item<double>(), 1e-3);
  term.backward();
  const auto parameters = model->unet()->parameters();
  for (size_t i = 0; i < parameters.size(); ++i) {
    at::Tensor expected = without.gradient[i] + weight * parameters[i].grad();
    EXPECT_TRUE(at::allclose(with.gradient[i], expected, 1e-4, 1e-6)) << name << ": parameter " << i;
  }
}

}  // namespace

TEST(CaptionAblation, RemoveWordsDropsExactWordsAndPrefixes) {
  const std::vector<std::string> artist = {"artist_lethe", "piece_*"};
  EXPECT_EQ(unlearn::remove_words("artist_lethe piece_03 dress onepiece", artist), "dress onepiece");
  EXPECT_EQ(unlearn::remove_words("  piece_00   tshirt  top artist_lethe", artist), "tshirt top");
  EXPECT_EQ(unlearn::remove_words("artist_lethe_2 pieces", artist), "artist_lethe_2 pieces");  // exact, prefix "piece_"
  EXPECT_EQ(unlearn::remove_words("artist_lethe piece_01", artist), "");
  EXPECT_EQ(unlearn::remove_words("sneaker footwear", {}), "sneaker footwear");
}

TEST(CaptionAblation, TermAndGradientMatchTheFormulaOnRecordedInputs) {
  auto source = captioned_model();
  const nlohmann::json plain = {{"scaling_norm", 5.0}};
  const double weight = 0.7;
  nlohmann::json ablated = plain;
  ablated["ablation_weight"] = weight;
  ablated["ablation_words"] = {"artist", "piece_*"};
  ablated["ablation_inputs"] = "retain";
  const Step without = siss_step(*source, plain), with = siss_step(*source, ablated);
  EXPECT_TRUE(without.reference_calls.empty());
  ASSERT_EQ(with.reference_calls.size(), 1u);
  ASSERT_EQ(with.model_calls.size(), without.model_calls.size() + 1);
  // The frozen model saw the captions without the artist's words, at the same x_t and t as the
  // trained model's extra call, which saw the forget captions.
  const auto& reference_call = with.reference_calls[0];
  const auto& model_call = with.model_calls.back();
  EXPECT_TRUE(at::equal(reference_call.x_t, model_call.x_t));
  EXPECT_TRUE(at::equal(reference_call.t, model_call.t));
  // The forget stream's first batch is a permutation of the set: each row's caption is one of
  // the forget captions, and the frozen model's is the same row without the artist's words.
  auto forget_contexts = source->context_for({"artist piece_a top", "artist piece_b shoe", "artist piece_a shoe",
                                              "artist piece_b top"});
  auto ablated_contexts = source->context_for({"top", "shoe", "shoe", "top"});
  for (int64_t row = 0; row < 4; ++row) {
    bool found = false;
    for (int64_t k = 0; k < 4; ++k)
      found = found || (at::allclose(model_call.context[row], forget_contexts[k]) &&
                        at::allclose(reference_call.context[row], ablated_contexts[k]));
    EXPECT_TRUE(found) << "row " << row;
  }
  // The x_t are the retain images noised (ablation_inputs = retain): the same t as the SISS forward.
  EXPECT_TRUE(at::equal(model_call.t, with.model_calls[0].t));

  // Value: mean_B sum_d (model(x_t, c) - frozen(x_t, c'))^2, the model being the source at step 0.
  expect_term_and_gradient(*source, *source, model_call, reference_call, with, without, "ablation", weight);
}

TEST(CaptionAblation, SameCaptionInputsAreRetainImagesOfTheAblatedCaption) {
  auto source = captioned_model();
  nlohmann::json settings = {{"scaling_norm", 5.0}, {"ablation_weight", 1.0}, {"ablation_words", {"artist", "piece_*"}}};
  const Step retain = siss_step(*source, settings);
  settings["ablation_inputs"] = "retain_same_caption";
  const Step same = siss_step(*source, settings);
  // The same t, eps and retain batch x in both runs: x_t(same) - x_t(retain) = gamma_t (z - x),
  // so each row's z - x must be (image j) - (image k) of the retain set, with j captioned as the
  // caption the frozen model saw in that row.
  const auto& with_retain = retain.model_calls.back();
  const auto& with_same = same.model_calls.back();
  ASSERT_TRUE(at::equal(with_retain.t, with_same.t));
  at::Tensor gamma = source->schedule().signal_scale(with_same.t, 4);  // [B, 1, 1, 1]
  at::Tensor difference = (with_same.x_t - with_retain.x_t) / gamma;     // [B, C, H, W]
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(21);        // siss_step's data, drawn alike
  at::rand({4, 1, 8, 8}, g);                                              // the forget images
  at::Tensor images = at::rand({4, 1, 8, 8}, g) * 2 - 1;                  // the retain images
  const std::vector<std::string> captions = {"top", "shoe", "shoe", "top"};
  for (int64_t row = 0; row < 4; ++row) {
    std::string caption;  // what the frozen model saw in this row
    for (const std::string candidate : {"top", "shoe"})
      if (at::allclose(same.reference_calls[0].context[row], source->context_for({candidate})[0])) caption = candidate;
    ASSERT_FALSE(caption.empty()) << "row " << row;
    bool found = false;
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 4; ++k)
        found = found || (captions[j] == caption && at::allclose(difference[row], images[j] - images[k], 1e-4, 1e-4));
    EXPECT_TRUE(found) << "row " << row << ": z is not a retain image captioned '" << caption << "'";
  }
  // A caption no retain image has is named.
  settings["ablation_words"] = {"artist"};  // "piece_a top" is no retain caption
  expect_error([&] { siss_step(*source, settings); },
               {"retain_same_caption", "expected retain images captioned 'piece_", "got none in the retain set"});
  settings["ablation_inputs"] = "anchor";
  expect_error([&] { unlearn::make_objective("siss", settings); }, {"ablation_inputs", "retain_same_caption", "'anchor'"});
}

TEST(CaptionAblation, PreservationKeepsTheAblatedCaptionAtTheSameTarget) {
  auto source = captioned_model();
  // A frozen model other than the trained one (as after some steps): at step 0 both are the same
  // and the term and its gradient would be 0.
  auto frozen = source->frozen_copy();
  {
    at::NoGradGuard no_grad;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(11);
    for (at::Tensor& parameter : frozen->unet()->parameters()) parameter.add_(at::randn(parameter.sizes(), g) * 0.05);
  }
  const double weight = 0.7, keep = 1.3;
  nlohmann::json ablated = {{"scaling_norm", 5.0}, {"ablation_weight", weight}, {"ablation_words", {"artist", "piece_*"}}};
  nlohmann::json preserved = ablated;
  preserved["preservation_weight"] = keep;
  const Step without = siss_step(*source, ablated, frozen.get()), with = siss_step(*source, preserved, frozen.get());
  ASSERT_EQ(with.reference_calls.size(), 1u);  // one frozen prediction serves both terms
  ASSERT_EQ(with.model_calls.size(), without.model_calls.size() + 1);
  // The extra call: the trained model on the ablation's x_t and t, with the frozen model's
  // captions (the forget captions without the artist's words).
  const auto& reference_call = with.reference_calls[0];
  const auto& kept_call = with.model_calls.back();
  EXPECT_TRUE(at::equal(kept_call.x_t, reference_call.x_t));
  EXPECT_TRUE(at::equal(kept_call.t, reference_call.t));
  EXPECT_TRUE(at::equal(kept_call.context, reference_call.context));
  EXPECT_EQ(with.terms.at("ablation"), without.terms.at("ablation"));
  // Value: mean_B sum_d (model(x_t, c') - frozen(x_t, c'))^2, the model being the source at step 0.
  expect_term_and_gradient(*source, *frozen, kept_call, reference_call, with, without, "preservation", keep);
}

// fp16's loss scaling (core/loss_scaling.hpp) on the SISS path: every backward (retain, forget,
// ablation, preservation) runs on loss * 2^16 and the sums are divided before the norms combine
// them. In fp32 a power-of-two scale is exact, so the step's gradient and terms are the same bits.
TEST(CaptionAblation, ALossScaledStepGivesTheUnscaledGradientBitForBit) {
  auto source = captioned_model();
  const nlohmann::json recipe = {{"scaling_norm", 5.0}, {"ablation_weight", 1.0}, {"ablation_words", {"artist", "piece_*"}},
                                 {"preservation_weight", 6.0}};
  const Step plain = siss_step(*source, recipe), scaled = siss_step(*source, recipe, nullptr, 65536.0);
  EXPECT_EQ(plain.terms, scaled.terms);
  ASSERT_EQ(plain.gradient.size(), scaled.gradient.size());
  for (size_t i = 0; i < plain.gradient.size(); ++i) EXPECT_TRUE(at::equal(plain.gradient[i], scaled.gradient[i])) << i;
  // ... and the backwards really ran on the scaled losses: an infinite scale overflows them.
  const Step overflowed = siss_step(*source, recipe, nullptr, std::numeric_limits<double>::infinity());
  bool finite = true;
  for (const at::Tensor& gradient : overflowed.gradient) finite = finite && at::isfinite(gradient).all().item<bool>();
  EXPECT_FALSE(finite);
  EXPECT_TRUE(std::isfinite(overflowed.terms.at("retain")));  // the losses themselves are not scaled
}

TEST(CaptionAblation, SettingsAreChecked) {
  expect_error([] { unlearn::make_objective("siss", {{"preservation_weight", 1.0}}); },
               {"preservation_weight", "without caption ablation", "ablation_weight 0"});
  expect_error([] { unlearn::make_objective("siss", {{"ablation_weight", 1.0}, {"ablation_words", {"x"}}, {"preservation_weight", -1.0}}); },
               {"preservation_weight", "expected >= 0", "-1"});
  expect_error([] { unlearn::make_objective("siss", {{"ablation_weight", 1.0}}); },
               {"ablation_words", "expected the words to remove"});
  expect_error([] { unlearn::make_objective("siss", {{"ablation_weight", 1.0}, {"ablation_words", {"x"}}, {"ablation_inputs", "anchor"}}); },
               {"ablation_inputs", "forget, retain or retain_same_caption", "'anchor'"});
  EXPECT_FALSE(unlearn::make_objective("siss")->needs_reference());
  EXPECT_TRUE(unlearn::make_objective("siss", {{"ablation_weight", 1.0}, {"ablation_words", {"x"}}})->needs_reference());
}

// The mixture under the retain and forget captions, and x_a under the forget captions and under
// them without the artist's words, each pair run with its shared layers once: the step's
// gradient and terms are bit for bit those of one forward per conditioning, in fp32 and bf16.
TEST(CaptionAblation, SharedForwardsGiveTheSeparateForwardsStepBitForBit) {
  auto source = captioned_model();
  const nlohmann::json settings = {{"scaling_norm", 5.0},
                                   {"ablation_weight", 0.7},
                                   {"ablation_words", {"artist", "piece_*"}},
                                   {"ablation_inputs", "forget"},
                                   {"preservation_weight", 2.0}};
  for (const Precision precision : {Precision::fp32, Precision::bf16}) {
    PrecisionScope scope(precision);
    const Step separate = siss_step(*source, settings), shared = siss_step(*source, settings, nullptr, 1.0, false);
    EXPECT_EQ(separate.model_calls.size(), 4u);
    ASSERT_EQ(shared.terms.size(), separate.terms.size());
    for (const auto& [name, value] : separate.terms) EXPECT_EQ(shared.terms.at(name), value) << name;
    ASSERT_EQ(shared.gradient.size(), separate.gradient.size());
    for (size_t i = 0; i < shared.gradient.size(); ++i)
      EXPECT_TRUE(at::equal(shared.gradient[i], separate.gradient[i])) << precision_name(precision) << ", parameter " << i;
  }
}
