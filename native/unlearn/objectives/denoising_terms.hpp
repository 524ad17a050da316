// The pieces the objectives build their loss terms from: a batch noised at drawn timesteps,
// the per-sample denoising error, the retain term and the forget term (docs/methods.md §2-§5).
// Every random draw comes from the context's generator, in the order written here, so an
// objective composed of them draws what it drew when it spelled them out.
#pragma once

#include <ATen/core/Tensor.h>

#include "unlearn/losses.hpp"
#include "unlearn/objective.hpp"

namespace lethe::unlearn {

// x_0 noised at t: x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, and the model's
// training target (eps, v or x_0, by the schedule's prediction type).
struct NoisedBatch {
  at::Tensor t;       // [B] timesteps
  at::Tensor eps;     // [B, C, H, W]
  at::Tensor x_t;     // [B, C, H, W]
  at::Tensor target;  // [B, C, H, W]
};

// x_0 [B, C, H, W] noised with the given eps and t (no draws).
NoisedBatch noised(const diffusion::NoiseSchedule& schedule, const at::Tensor& x0, const at::Tensor& eps,
                   const at::Tensor& t);
// Draws eps for x_0 [B, C, H, W] from the context's generator and noises x_0 at t (which the
// caller drew before: training_timesteps or forget_timesteps).
NoisedBatch noise_batch(ObjectiveContext& context, const at::Tensor& x0, const at::Tensor& t);

// The retain term: the ordinary denoising loss of `batch` at uniform timesteps,
// mean_B denoising_error (losses.hpp). Draws t, then eps, then the batch's caption variants. [] scalar
at::Tensor retain_loss(ObjectiveContext& context, const ExampleBatch& batch, ErrorReduction reduction);

// Forget-term error per sample: the spatial masks and the frequency selection in force
// (its cutoff at each sample's t [B] when time-dependent) applied to prediction - target
// (forget_error). [B, C, H, W] -> [B]
at::Tensor selected_error(const ObjectiveContext& context, const at::Tensor& prediction, const at::Tensor& target,
                          const at::Tensor& masks, const at::Tensor& t);
// The same divided by the elements per sample d, a per-element mean like ErrorReduction::mean. [B]
at::Tensor selected_mean_error(const ObjectiveContext& context, const at::Tensor& prediction, const at::Tensor& target,
                               const at::Tensor& masks, const at::Tensor& t);
// The forget term: mean_B m(t) selected_error, m(t) the timestep selection's weight. [] scalar
at::Tensor forget_loss(const ObjectiveContext& context, const at::Tensor& prediction, const at::Tensor& target,
                       const at::Tensor& t, const at::Tensor& masks);

// The frozen reference model's prediction (no gradient); an error when the context has none.
at::Tensor reference_predict(ObjectiveContext& context, const at::Tensor& x_t, const at::Tensor& t,
                             const models::Conditioning& condition);

}  // namespace lethe::unlearn
