// Sampling a native model from text prompts (the Sample node): every prompt's samples in
// order, the sampling batch lowered so the run fits in the memory there is.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/progress.hpp"
#include "diffusion/sampling.hpp"
#include "models/diffusion_model.hpp"

namespace lethe::diffusion {

struct PromptSamples {
  at::Tensor images;       // [P * per_prompt, C, size, size] pixels in [0, 1], prompt-major
  int64_t batch_size = 0;  // the sampling batch used (options.batch_size or less, to fit)
};

// `per_prompt` samples of each prompt at size x size; sample i starts from the noise of
// options.seed + i. A run that cannot fit even one image at a time is refused, naming `where` (the
// settings that size it).
PromptSamples sample_prompts(models::DiffusionModel& model, const std::vector<std::string>& prompts, int64_t per_prompt,
                             int64_t size, SamplingOptions options, const std::string& where,
                             const ProgressCallback& progress = {});

}  // namespace lethe::diffusion
