// Batched sampling loops over any Denoiser: DDIM (eta >= 0) or DDPM ancestral, with
// classifier-free guidance, from pure noise or from a noised start image (the
// noise-injection probe of the SISS protocol). Sample i always starts from noise drawn
// with seed (seed + i), so results do not depend on batch size and the same sample index
// can be compared across models.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/progress.hpp"
#include "diffusion/schedule.hpp"
#include "models/denoiser.hpp"

namespace lethe::diffusion {

struct SamplingOptions {
  std::string sampler = "ddim";  // ddim | ddpm
  int64_t steps = 25;
  double guidance = 1.0;          // classifier-free guidance scale; 1 = conditional only
  double eta = 0.0;               // DDIM stochasticity
  std::string spacing = "leading";
  int64_t steps_offset = 1;
  uint64_t seed = 0;
  int64_t batch_size = 64;
  double clip_sample_range = 1.0; // clamp x0_hat to [-r, r]; 0 = off
  bool use_clipped_model_output = true;  // DDIM: eps from the clipped x0_hat (see ddim_step)
  int64_t start_timestep = -1;    // >= 0 with init images: noise them to this t and denoise

  template <typename Visitor>
  void visit(Visitor& v) {
    v("sampler", sampler);
    v("steps", steps);
    v("guidance", guidance);
    v("eta", eta);
    v("spacing", spacing);
    v("steps_offset", steps_offset);
    v("seed", seed);
    v("batch_size", batch_size);
    v("clip_sample_range", clip_sample_range);
    v("use_clipped_model_output", use_clipped_model_output);
    v("start_timestep", start_timestep);
  }
  void validate(const std::string& where) const;
};

// Generates one image per row of `context` ([N, L, D]). `uncond_context` ([1, L, D] or
// [N, L, D]) is needed when guidance != 1. `shape` is [C, H, W]. `init` ([N, C, H, W],
// optional) with options.start_timestep >= 0 starts from noised init images. Returns
// x_0 samples [N, C, H, W] (model space, e.g. [-1, 1] pixels), computed in inference mode.
at::Tensor sample(models::Denoiser& model, const NoiseSchedule& schedule, const at::Tensor& context,
                  const at::Tensor& uncond_context, const std::vector<int64_t>& shape, const SamplingOptions& options,
                  const at::Tensor& init = {}, const ProgressCallback& progress = {});

}  // namespace lethe::diffusion
