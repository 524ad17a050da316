// Single reverse-diffusion steps (DDPM, DDIM with eta), the inference timestep grids and
// classifier-free guidance. Formulas follow docs/methods.md §1.3-§1.4 and match
// diffusers' DDPMScheduler.step / DDIMScheduler.step.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "diffusion/schedule.hpp"

namespace lethe::diffusion {

// Timesteps for an `steps`-step sampler over a T-step schedule, from noisiest to cleanest.
// spacing: "leading" (diffusers' DDIM default: 0, T/N, 2T/N, ... + offset), "trailing"
// (T-1, T-1-T/N, ...), "linspace" (round(linspace(0, T-1, N))).
std::vector<int64_t> inference_timesteps(int64_t num_train_timesteps, int64_t steps,
                                         const std::string& spacing = "leading", int64_t steps_offset = 0);

struct StepResult {
  at::Tensor prev_sample;            // x_{t'}
  at::Tensor pred_original_sample;   // x0_hat
};

// DDIM step t -> t_prev (t_prev < 0: use abar = 1). x_t, model_output [B, ...]; t and t_prev
// are shared by the batch. eta > 0 needs `noise` shaped like x_t. clip_sample_range > 0
// clamps x0_hat to [-r, r] (diffusers' clip_sample). use_clipped_model_output re-derives
// eps from the clipped x0_hat (GLIDE; diffusers' argument of the same name): without it, a
// guided eps that disagrees with the clipped x0_hat pushes every step further out and
// strongly guided DDIM samples saturate.
StepResult ddim_step(const NoiseSchedule& schedule, const at::Tensor& model_output, int64_t t, int64_t t_prev,
                     const at::Tensor& x_t, double eta = 0.0, const at::Tensor& noise = {},
                     double clip_sample_range = 0.0, bool use_clipped_model_output = false);

// DDPM ancestral step t -> t_prev (usually t - 1). variance_type "fixed_small" (posterior
// variance) or "fixed_large" (beta_t). No noise is added at t = 0.
StepResult ddpm_step(const NoiseSchedule& schedule, const at::Tensor& model_output, int64_t t, int64_t t_prev,
                     const at::Tensor& x_t, const at::Tensor& noise,
                     const std::string& variance_type = "fixed_small", double clip_sample_range = 0.0);

// eps = eps_uncond + scale * (eps_cond - eps_uncond).
at::Tensor classifier_free_guidance(const at::Tensor& uncond, const at::Tensor& cond, double scale);

}  // namespace lethe::diffusion
