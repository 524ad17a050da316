#include "diffusion/prompt_sampling.hpp"

#include "core/error.hpp"
#include "core/runtime.hpp"
#include "data/image.hpp"
#include "models/unet_memory.hpp"

namespace lethe::diffusion {

PromptSamples sample_prompts(models::DiffusionModel& model, const std::vector<std::string>& prompts, int64_t per_prompt,
                             int64_t size, SamplingOptions options, const std::string& where,
                             const ProgressCallback& progress) {
  std::vector<std::string> captions;
  for (const auto& prompt : prompts) captions.insert(captions.end(), per_prompt, prompt);
  const auto& config = model.unet()->config();
  options.batch_size = models::sampling_batch_that_fits(config, static_cast<int64_t>(captions.size()), config.in_channels,
                                                        size, size, options.guidance != 1.0, options.batch_size,
                                                        available_memory_bytes(), where);
  at::Tensor samples = sample(model, model.schedule(), model.context_for(captions), model.context_for({""}),
                              {config.in_channels, size, size}, options, {}, progress);  // [N, C, size, size]
  return {data::to_pixels(samples), options.batch_size};
}

}  // namespace lethe::diffusion
