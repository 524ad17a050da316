#include "eval/attacks.hpp"

#include <cmath>
#include <limits>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <torch/autograd.h>
#include <torch/optim/adam.h>

#include "core/error.hpp"
#include "core/loss_scaling.hpp"
#include "core/precision.hpp"
#include "data/image.hpp"
#include "models/group_norm_kernel.hpp"

namespace lethe::eval {

void AttackConfig::validate(const std::string& where) const {
  check(prompt_steps >= 0, where, ".prompt_steps: expected >= 0, got ", prompt_steps);
  check(prompt_learning_rate > 0, where, ".prompt_learning_rate: expected > 0, got ", prompt_learning_rate);
  check(prompt_noise_draws >= 1, where, ".prompt_noise_draws: expected >= 1, got ", prompt_noise_draws);
  check(prompt_samples >= 1, where, ".prompt_samples: expected >= 1, got ", prompt_samples);
  check(relearn_max_steps >= 0, where, ".relearn_max_steps: expected >= 0, got ", relearn_max_steps);
  check(relearn_check_every >= 1, where, ".relearn_check_every: expected >= 1, got ", relearn_check_every);
  check(relearn_learning_rate > 0, where, ".relearn_learning_rate: expected > 0, got ", relearn_learning_rate);
  check(relearn_batch_size >= 1, where, ".relearn_batch_size: expected >= 1, got ", relearn_batch_size);
  check(relearn_samples >= 1, where, ".relearn_samples: expected >= 1, got ", relearn_samples);
  check(relearn_return_rate > 0 && relearn_return_rate <= 1, where, ".relearn_return_rate: expected in (0, 1], got ",
        relearn_return_rate);
}

namespace {

// Seeds of the attacks' draws, apart from the evaluation's own (sampling seed + offset).
constexpr uint64_t kPromptSeed = 4000037, kRelearnSeed = 5000011;

at::Generator generator_for(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

// Samples with per-row contexts [M, L, D] (seeded), as pixels.
at::Tensor draw(models::DiffusionModel& model, const at::Tensor& context, const diffusion::SamplingOptions& sampling,
                const std::vector<int64_t>& shape) {
  c10::InferenceMode inference;
  at::Tensor uncond = model.context_for({""});  // [1, L, D]
  return data::to_pixels(diffusion::sample(model, model.schedule(), context, uncond, shape, sampling));
}

std::vector<int64_t> image_shape(const at::Tensor& images) { return {images.size(1), images.size(2), images.size(3)}; }

}  // namespace

at::Tensor prompt_surrogate_loss(models::DiffusionModel& model, const at::Tensor& embeddings, const at::Tensor& images,
                                 const at::Tensor& t, const at::Tensor& noise) {
  const int64_t targets = images.size(0), draws = t.size(0) / targets;
  check(t.size(0) == targets * draws && noise.size(0) == t.size(0), "prompt attack: expected t and noise [N * draws]");
  at::Tensor x0 = images.repeat_interleave(draws, 0);                                      // [N * draws, C, H, W]
  at::Tensor context = model.text_encoder()->encode_embeddings(embeddings).repeat_interleave(draws, 0);  // [N * draws, L, D]
  at::Tensor x_t = model.schedule().add_noise(x0, noise, t);
  at::Tensor target = model.schedule().training_target(x0, noise, t);
  at::Tensor error = (model.predict(x_t, t, context) - target).pow(2).flatten(1).mean(1);  // [N * draws]
  return error.view({targets, draws}).mean(1);                                              // [N]
}

PromptAttackResult prompt_attack(models::DiffusionModel& model, const AttackTargets& targets, const AttackJudge& judge,
                                 const AttackConfig& config, const diffusion::SamplingOptions& sampling,
                                 const ProgressCallback& progress) {
  check(model.has_text_encoder(), "prompt attack: the model has no token encoder (only the bench's native models do)");
  c10::InferenceMode enable_autograd(false);  // a host may call under inference mode
  at::AutoGradMode grad_mode(true);
  // In fp32 on a CPU the UNet runs channels-last with gradients too: only the input's gradient is
  // needed, and that backward ran 1.15x faster channels-last (models/group_norm_kernel.hpp).
  models::ChannelsLastFp32Gradients channels_last;
  const int64_t count = targets.images.size(0), draws = config.prompt_noise_draws;
  at::Tensor images = data::to_model_space(targets.images);  // [N, C, H, W]
  at::Tensor embeddings;
  {
    at::NoGradGuard no_grad;
    embeddings = model.text_encoder()->embed(model.text_encoder()->tokenize(targets.captions)).clone();  // [N, L, D]
  }
  embeddings.set_requires_grad(true);
  torch::optim::Adam optimizer({embeddings}, torch::optim::AdamOptions(config.prompt_learning_rate));
  LossScaler scaler(current_precision() == Precision::fp16);  // fp16: dynamic loss scaling, as training
  at::Generator generator = generator_for(sampling.seed + kPromptSeed);
  const int64_t timesteps = model.schedule().num_timesteps();
  // The same fixed draws measure the loss before and after; the optimisation draws fresh ones.
  at::Tensor probe_t = at::randint(timesteps, {count * draws}, generator, at::kLong);
  at::Tensor probe_noise = at::randn({count * draws, images.size(1), images.size(2), images.size(3)}, generator);
  auto probe = [&] {
    at::NoGradGuard no_grad;
    at::Tensor loss = prompt_surrogate_loss(model, embeddings, images, probe_t, probe_noise).contiguous();
    return std::vector<double>(loss.data_ptr<float>(), loss.data_ptr<float>() + loss.numel());
  };
  PromptAttackResult result;
  result.loss_before = probe();
  ProgressReporter reporter(progress, "prompt attack", config.prompt_steps);
  for (int64_t step = 0; step < config.prompt_steps; ++step) {
    at::Tensor t = at::randint(timesteps, {count * draws}, generator, at::kLong);
    at::Tensor noise = at::randn({count * draws, images.size(1), images.size(2), images.size(3)}, generator);
    at::Tensor loss = prompt_surrogate_loss(model, embeddings, images, t, noise).sum();
    // Only the embeddings' gradient: the model's weights are never touched.
    at::Tensor gradient = torch::autograd::grad({scaler.scaled(loss)}, {embeddings})[0];
    const bool finite = scaler.unscale({gradient});
    if (finite) {  // fp16 overflow: no update, a smaller loss scale
      embeddings.mutable_grad() = gradient;
      optimizer.step();
    }
    scaler.update(!finite, str("prompt attack step ", step));
    reporter.update(step + 1, {{"loss", loss.item<double>() / static_cast<double>(count)}});
  }
  result.loss_after = probe();
  {
    at::NoGradGuard no_grad;
    result.embeddings = embeddings.detach().clone();
    at::Tensor context = model.text_encoder()->encode_embeddings(result.embeddings).repeat_interleave(config.prompt_samples, 0);
    diffusion::SamplingOptions options = sampling;
    options.seed = sampling.seed + kPromptSeed;
    result.samples = draw(model, context, options, image_shape(targets.images));
  }
  at::Tensor assigned = at::arange(count, at::kLong).repeat_interleave(config.prompt_samples);
  std::tie(result.success, result.scores) = judge(result.samples, assigned);
  return result;
}

RelearnResult relearn_attack(const models::DiffusionModel& model, const AttackTargets& targets, const AttackJudge& judge,
                             const AttackConfig& config, const diffusion::SamplingOptions& sampling,
                             const ProgressCallback& progress) {
  const int64_t count = targets.images.size(0);
  check(count >= 2, "relearning attack: expected at least 2 targets (half to fine-tune on, half held out), got ", count);
  c10::InferenceMode enable_autograd(false);
  at::AutoGradMode grad_mode(true);
  RelearnResult result;
  result.relearn_targets = count / 2;
  result.held_out_targets = count - result.relearn_targets;
  // The copy trains; the model under test stays untouched.
  std::shared_ptr<models::DiffusionModel> copy = model.frozen_copy();
  std::vector<at::Tensor> parameters = copy->unet()->parameters();
  for (at::Tensor& parameter : parameters) parameter.set_requires_grad(true);
  torch::optim::Adam optimizer(parameters, torch::optim::AdamOptions(config.relearn_learning_rate));
  LossScaler scaler(current_precision() == Precision::fp16);  // fp16: dynamic loss scaling, as training

  at::Tensor train_images = data::to_model_space(targets.images.narrow(0, 0, result.relearn_targets));  // [n, C, H, W]
  at::Tensor train_context, held_out_context;  // the copy trains its UNet only: contexts stay fixed
  std::vector<std::string> held_out_captions;
  for (int64_t i = result.relearn_targets; i < count; ++i)
    for (int64_t k = 0; k < config.relearn_samples; ++k) held_out_captions.push_back(targets.captions[i]);
  at::Tensor held_out_target =
      at::arange(result.relearn_targets, count, at::kLong).repeat_interleave(config.relearn_samples);  // [m * K]
  {
    at::NoGradGuard no_grad;
    train_context = copy->context_for(std::vector<std::string>(targets.captions.begin(),
                                                               targets.captions.begin() + result.relearn_targets));
    held_out_context = copy->context_for(held_out_captions);
  }
  diffusion::SamplingOptions options = sampling;
  options.seed = sampling.seed + kRelearnSeed;
  auto check_now = [&](int64_t step) {
    at::Tensor samples = draw(*copy, held_out_context, options, image_shape(targets.images));
    const double rate = judge(samples, held_out_target).first.to(at::kDouble).mean().item<double>();
    result.steps.push_back(step);
    result.success_rate.push_back(rate);
    if (result.returned_at < 0 && rate >= config.relearn_return_rate) result.returned_at = step;
  };

  at::Generator generator = generator_for(sampling.seed + kRelearnSeed);
  const int64_t timesteps = copy->schedule().num_timesteps(), batch = config.relearn_batch_size;
  ProgressReporter reporter(progress, "relearning attack", config.relearn_max_steps);
  check_now(0);
  for (int64_t step = 1; step <= config.relearn_max_steps && result.returned_at < 0; ++step) {
    at::Tensor pick = at::randint(result.relearn_targets, {batch}, generator, at::kLong);
    at::Tensor x0 = train_images.index_select(0, pick);
    at::Tensor t = at::randint(timesteps, {batch}, generator, at::kLong);
    at::Tensor noise = at::randn(x0.sizes(), generator);
    at::Tensor x_t = copy->schedule().add_noise(x0, noise, t);
    at::Tensor loss = (copy->predict(x_t, t, train_context.index_select(0, pick)) -
                       copy->schedule().training_target(x0, noise, t))
                          .pow(2)
                          .mean();
    optimizer.zero_grad();
    scaler.scaled(loss).backward();
    std::vector<at::Tensor> gradients;
    for (const at::Tensor& parameter : parameters) gradients.push_back(parameter.grad());
    const bool finite = scaler.unscale(gradients);
    if (finite) optimizer.step();  // fp16 overflow: no update, a smaller loss scale
    scaler.update(!finite, str("relearning attack step ", step));
    reporter.update(step, {{"loss", loss.item<double>()}});
    if (step % config.relearn_check_every == 0 || step == config.relearn_max_steps) check_now(step);
  }
  return result;
}

AttackReport run_attacks(models::DiffusionModel& model, const AttackTargets& targets, const AttackJudge& judge,
                         const AttackConfig& config, const diffusion::SamplingOptions& sampling,
                         const ProgressCallback& progress) {
  AttackReport report;
  StageClock clock;
  const PromptAttackResult prompt = prompt_attack(model, targets, judge, config, sampling, progress);
  report.stage_seconds["prompt attack"] = clock.lap();
  const RelearnResult relearn = relearn_attack(model, targets, judge, config, sampling, progress);
  report.stage_seconds["relearning attack"] = clock.lap();
  report.prompt_samples = prompt.samples;
  report.prompt_success = prompt.success;
  report.metrics["attack_prompt_success_rate"] = prompt.success.to(at::kDouble).mean().item<double>();
  report.metrics["attack_prompt_score_mean"] = prompt.scores.to(at::kDouble).mean().item<double>();
  report.metrics["attack_relearn_steps"] =
      relearn.returned_at >= 0 ? static_cast<double>(relearn.returned_at) : std::numeric_limits<double>::quiet_NaN();
  const int64_t k = config.prompt_samples;
  nlohmann::json per_target = nlohmann::json::array();
  for (int64_t i = 0; i < targets.images.size(0); ++i)
    per_target.push_back({{"caption", targets.captions[i]},
                          {"success_rate", prompt.success.narrow(0, i * k, k).to(at::kDouble).mean().item<double>()},
                          {"surrogate_loss_before", prompt.loss_before[i]},
                          {"surrogate_loss_after", prompt.loss_after[i]}});
  report.details = {
      {"prompt", {{"success_rate", report.metrics["attack_prompt_success_rate"]},
                  {"score_mean", report.metrics["attack_prompt_score_mean"]},
                  {"per_target", per_target}}},
      {"relearn", {{"returned", relearn.returned_at >= 0},
                   {"steps", relearn.returned_at >= 0 ? nlohmann::json(relearn.returned_at) : nlohmann::json(nullptr)},
                   {"budget", config.relearn_max_steps},
                   {"return_rate", config.relearn_return_rate},
                   {"relearn_targets", relearn.relearn_targets},
                   {"held_out_targets", relearn.held_out_targets},
                   {"checked_steps", relearn.steps},
                   {"held_out_success_rate", relearn.success_rate}}}};
  return report;
}

}  // namespace lethe::eval
