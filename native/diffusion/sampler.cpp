#include "diffusion/sampler.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::diffusion {

std::vector<int64_t> inference_timesteps(int64_t num_train_timesteps, int64_t steps, const std::string& spacing,
                                         int64_t steps_offset) {
  check(steps >= 1 && steps <= num_train_timesteps, "sampler steps must be in [1, ", num_train_timesteps,
        "], got ", steps);
  std::vector<int64_t> out;
  if (spacing == "leading") {
    const int64_t ratio = num_train_timesteps / steps;
    for (int64_t i = steps - 1; i >= 0; --i) out.push_back(i * ratio + steps_offset);
  } else if (spacing == "trailing") {
    const double ratio = static_cast<double>(num_train_timesteps) / steps;
    for (int64_t i = 0; i < steps; ++i)
      out.push_back(static_cast<int64_t>(std::round(num_train_timesteps - i * ratio)) - 1);
  } else if (spacing == "linspace") {
    for (int64_t i = steps - 1; i >= 0; --i) {
      const double value = steps == 1 ? 0.0 : static_cast<double>(i) * (num_train_timesteps - 1) / (steps - 1);
      out.push_back(static_cast<int64_t>(std::nearbyint(value)));
    }
  } else {
    throw Error(str("unknown timestep spacing '", spacing, "'; known: leading, trailing, linspace"));
  }
  for (int64_t t : out)
    check(t >= 0 && t < num_train_timesteps, "timestep spacing '", spacing, "' with offset ", steps_offset,
          " gives timestep ", t, " outside [0, ", num_train_timesteps, ")");
  return out;
}

namespace {

// (x0_hat, eps_hat) from a model output at one timestep, with float32 scalar coefficients
// in diffusers' order of operations (the extreme ends of a schedule amplify rounding).
std::pair<at::Tensor, at::Tensor> split_prediction(const std::string& prediction_type, float abar_t,
                                                   const at::Tensor& x_t, const at::Tensor& output) {
  const float root_abar = std::sqrt(abar_t), root_beta = std::sqrt(1.0f - abar_t);
  if (prediction_type == "epsilon") return {(x_t - root_beta * output) / root_abar, output};
  if (prediction_type == "v_prediction") return {root_abar * x_t - root_beta * output, root_abar * output + root_beta * x_t};
  return {output, (x_t - root_abar * output) / root_beta};  // "sample"
}

}  // namespace

StepResult ddim_step(const NoiseSchedule& schedule, const at::Tensor& model_output, int64_t t, int64_t t_prev,
                     const at::Tensor& x_t, double eta, const at::Tensor& noise, double clip_sample_range,
                     bool use_clipped_model_output) {
  check(t_prev < t, "ddim_step: t_prev (", t_prev, ") must be below t (", t, ")");
  // Step coefficients in float32 from the float32 tables, as diffusers computes them.
  const float abar_t = static_cast<float>(schedule.alpha_cumprod(t));
  const float abar_prev = static_cast<float>(schedule.alpha_cumprod(t_prev));
  auto [x0, eps] = split_prediction(schedule.config().prediction_type, abar_t, x_t, model_output);
  if (clip_sample_range > 0) {
    x0 = x0.clamp(-clip_sample_range, clip_sample_range);
    if (use_clipped_model_output) eps = (x_t - std::sqrt(abar_t) * x0) / std::sqrt(1.0f - abar_t);
  }
  const float variance = (1.0f - abar_prev) / (1.0f - abar_t) * (1.0f - abar_t / abar_prev);
  const float std_dev = static_cast<float>(eta) * std::sqrt(variance);
  at::Tensor prev = std::sqrt(abar_prev) * x0 + std::sqrt(1.0f - abar_prev - std_dev * std_dev) * eps;
  if (eta > 0) {
    check(noise.defined() && noise.sizes() == x_t.sizes(), "ddim_step: eta > 0 needs noise shaped ", x_t.sizes());
    prev = prev + std_dev * noise;
  }
  return {prev, x0};
}

StepResult ddpm_step(const NoiseSchedule& schedule, const at::Tensor& model_output, int64_t t, int64_t t_prev,
                     const at::Tensor& x_t, const at::Tensor& noise, const std::string& variance_type,
                     double clip_sample_range) {
  check(t_prev < t, "ddpm_step: t_prev (", t_prev, ") must be below t (", t, ")");
  // Step coefficients in float32 from the float32 tables, as diffusers computes them.
  const float abar_t = static_cast<float>(schedule.alpha_cumprod(t));
  const float abar_prev = static_cast<float>(schedule.alpha_cumprod(t_prev));
  const float alpha_t = abar_t / abar_prev;  // the step's alpha (product over a strided step)
  const float beta_t = 1.0f - alpha_t;
  auto [x0, eps] = split_prediction(schedule.config().prediction_type, abar_t, x_t, model_output);
  if (clip_sample_range > 0) x0 = x0.clamp(-clip_sample_range, clip_sample_range);
  // Posterior mean: coefficients of x0_hat and x_t.
  const float x0_coefficient = std::sqrt(abar_prev) * beta_t / (1.0f - abar_t);
  const float xt_coefficient = std::sqrt(alpha_t) * (1.0f - abar_prev) / (1.0f - abar_t);
  at::Tensor prev = x0_coefficient * x0 + xt_coefficient * x_t;
  if (t > 0) {
    float variance;
    if (variance_type == "fixed_small") {
      variance = std::max((1.0f - abar_prev) / (1.0f - abar_t) * beta_t, 1e-20f);
    } else if (variance_type == "fixed_large") {
      variance = beta_t;
    } else {
      throw Error(str("ddpm_step: unknown variance_type '", variance_type, "'; known: fixed_small, fixed_large"));
    }
    check(noise.defined() && noise.sizes() == x_t.sizes(), "ddpm_step: needs noise shaped ", x_t.sizes());
    prev = prev + std::sqrt(variance) * noise;
  }
  return {prev, x0};
}

at::Tensor classifier_free_guidance(const at::Tensor& uncond, const at::Tensor& cond, double scale) {
  return uncond + scale * (cond - uncond);
}

}  // namespace lethe::diffusion
