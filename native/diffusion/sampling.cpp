#include "diffusion/sampling.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "diffusion/sampler.hpp"

namespace lethe::diffusion {

void SamplingOptions::validate(const std::string& where) const {
  check(sampler == "ddim" || sampler == "ddpm", where, ".sampler: unknown '", sampler, "'; known: ddim, ddpm");
  check(steps >= 1, where, ".steps: expected >= 1, got ", steps);
  check(guidance >= 0, where, ".guidance: expected >= 0, got ", guidance);
  check(eta >= 0, where, ".eta: expected >= 0, got ", eta);
  check(batch_size >= 1, where, ".batch_size: expected >= 1, got ", batch_size);
  check(clip_sample_range >= 0, where, ".clip_sample_range: expected >= 0, got ", clip_sample_range);
}

namespace {

// Per-sample noise: sample i draws from a generator seeded with (seed + i) and `stream`.
at::Tensor per_sample_noise(const std::vector<int64_t>& shape, int64_t first, int64_t count, uint64_t seed,
                            uint64_t stream, const at::TensorOptions& options) {
  std::vector<at::Tensor> rows;
  std::vector<int64_t> one = {1};
  one.insert(one.end(), shape.begin(), shape.end());
  for (int64_t i = 0; i < count; ++i) {
    at::Generator generator =
        at::make_generator<at::CPUGeneratorImpl>(seed + static_cast<uint64_t>(first + i) + stream * 0x9E3779B97F4A7C15ULL);
    rows.push_back(at::randn(one, generator, at::kFloat));
  }
  return at::cat(rows, 0).to(options);  // [count, C, H, W]
}

}  // namespace

at::Tensor sample(models::Denoiser& model, const NoiseSchedule& schedule, const at::Tensor& context,
                  const at::Tensor& uncond_context, const std::vector<int64_t>& shape, const SamplingOptions& options,
                  const at::Tensor& init, const ProgressCallback& progress) {
  options.validate("sampling");
  check(context.dim() == 3, "sample: context must be [N, L, D], got ", context.sizes());
  const bool guided = options.guidance != 1.0;
  check(!guided || (uncond_context.defined() && uncond_context.dim() == 3), "sample: guidance ", options.guidance,
        " needs an unconditional context [1, L, D]");
  const int64_t total = context.size(0);
  const bool from_init = options.start_timestep >= 0;
  check(!from_init || (init.defined() && init.size(0) == total), "sample: start_timestep needs init images [", total,
        ", C, H, W]");
  c10::InferenceMode inference;
  // The model itself, or its copy for sampling in this thread's precision (converted once here).
  const std::shared_ptr<models::Denoiser> copy = model.sampling_copy(current_precision());
  models::Denoiser& net = copy ? *copy : model;

  const int64_t train_steps = schedule.num_timesteps();
  std::vector<int64_t> timesteps;
  if (options.sampler == "ddpm" && options.steps >= train_steps) {
    for (int64_t t = train_steps - 1; t >= 0; --t) timesteps.push_back(t);
  } else {
    timesteps = inference_timesteps(train_steps, options.steps, options.spacing, options.steps_offset);
  }
  if (from_init) {
    std::vector<int64_t> kept;
    for (int64_t t : timesteps)
      if (t <= options.start_timestep) kept.push_back(t);
    timesteps = kept;
    check(!timesteps.empty(), "sample: no sampler timestep at or below start_timestep ", options.start_timestep);
  }

  const at::TensorOptions tensor_options = context.options();
  // Progress counts image-steps: every image of the batch advanced one sampler step.
  ProgressReporter reporter(progress, "sample", total * static_cast<int64_t>(timesteps.size()));
  int64_t done = 0;
  std::vector<at::Tensor> outputs;
  for (int64_t first = 0; first < total; first += options.batch_size) {
    const int64_t count = std::min(options.batch_size, total - first);
    at::Tensor cond = context.narrow(0, first, count);                                   // [b, L, D]
    at::Tensor uncond;
    if (guided)
      uncond = uncond_context.size(0) == 1 ? uncond_context.expand({count, -1, -1})
                                           : uncond_context.narrow(0, first, count);     // [b, L, D]
    at::Tensor x = per_sample_noise(shape, first, count, options.seed, 0, tensor_options);  // [b, C, H, W]
    if (from_init) {
      at::Tensor t0 = at::full({count}, timesteps.front(), at::kLong);
      x = schedule.add_noise(init.narrow(0, first, count).to(tensor_options), x, t0);
    }
    for (size_t i = 0; i < timesteps.size(); ++i) {
      const int64_t t = timesteps[i];
      const int64_t t_prev = i + 1 < timesteps.size() ? timesteps[i + 1] : -1;
      at::Tensor t_batch = at::full({count}, t, at::TensorOptions().dtype(at::kLong).device(x.device()));
      at::Tensor output;
      if (guided) {
        // One forward over [uncond; cond], then eps = uncond + w (cond - uncond).
        at::Tensor both = net.predict_groups(x, t_batch, at::cat({uncond, cond}), 2);  // [2b, C, H, W]
        auto halves = both.chunk(2);
        output = classifier_free_guidance(halves[0], halves[1], options.guidance);
      } else {
        output = net.predict(x, t_batch, cond);
      }
      at::Tensor noise;
      if (options.sampler == "ddpm" || options.eta > 0)
        noise = per_sample_noise(shape, first, count, options.seed + static_cast<uint64_t>(t) + 1, 1, tensor_options);
      x = options.sampler == "ddim"
              ? ddim_step(schedule, output, t, t_prev, x, options.eta, noise, options.clip_sample_range,
                          options.use_clipped_model_output).prev_sample
              : ddpm_step(schedule, output, t, t_prev, x, noise, "fixed_small", options.clip_sample_range).prev_sample;
      done += count;
      reporter.update(done);
    }
    outputs.push_back(x);
  }
  return at::cat(outputs, 0);
}

}  // namespace lethe::diffusion
