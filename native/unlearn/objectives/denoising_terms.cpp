#include "unlearn/objectives/denoising_terms.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "unlearn/losses.hpp"

namespace lethe::unlearn {

NoisedBatch noised(const diffusion::NoiseSchedule& schedule, const at::Tensor& x0, const at::Tensor& eps,
                   const at::Tensor& t) {
  return {t, eps, schedule.add_noise(x0, eps, t), schedule.training_target(x0, eps, t)};
}

NoisedBatch noise_batch(ObjectiveContext& context, const at::Tensor& x0, const at::Tensor& t) {
  return noised(*context.schedule, x0, context.noise_like(x0), t);
}

at::Tensor retain_loss(ObjectiveContext& context, const ExampleBatch& batch, ErrorReduction reduction) {
  const NoisedBatch noisy = noise_batch(context, batch.images, context.training_timesteps(batch.size()));
  at::Tensor prediction = context.model->predict(noisy.x_t, noisy.t, context.context(batch));  // [B, C, H, W]
  return denoising_error(prediction, noisy.target, reduction).mean();
}

at::Tensor selected_error(const ObjectiveContext& context, const at::Tensor& prediction, const at::Tensor& target,
                          const at::Tensor& masks, const at::Tensor& t) {
  return forget_error(prediction.to(at::kFloat) - target, masks, frequency_of(context), time_fraction(context, t));
}

at::Tensor selected_mean_error(const ObjectiveContext& context, const at::Tensor& prediction, const at::Tensor& target,
                               const at::Tensor& masks, const at::Tensor& t) {
  return selected_error(context, prediction, target, masks, t) / static_cast<double>(elements_per_sample(target));
}

at::Tensor forget_loss(const ObjectiveContext& context, const at::Tensor& prediction, const at::Tensor& target,
                       const at::Tensor& t, const at::Tensor& masks) {
  at::Tensor weight = forget_time_weight(context, t).to(target.device());  // [B] m(t)
  return (weight * selected_error(context, prediction, target, masks, t)).mean();
}

at::Tensor reference_predict(ObjectiveContext& context, const at::Tensor& x_t, const at::Tensor& t,
                             const models::Conditioning& condition) {
  check(context.reference != nullptr,
        "this objective needs the frozen reference model (a copy of the starting model), but none was given");
  at::NoGradGuard no_grad;
  return context.reference->predict(x_t, t, condition);
}

}  // namespace lethe::unlearn
