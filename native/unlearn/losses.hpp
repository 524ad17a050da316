// The loss formulas of every unlearning objective as plain differentiable functions on
// tensors (docs/methods.md §2-§5). Objectives compose them with data and
// models; tests compare each with a PyTorch reference written from docs/methods.md, values and
// gradients.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

#include "unlearn/frequency_selection.hpp"

namespace lethe::unlearn {

// How a sample's squared error is reduced over its elements: the SISS repository's sum_d, or
// the per-element mean (comparable across image sizes).
enum class ErrorReduction { sum, mean };
// Per-sample squared error of a prediction (any dtype, taken as float) against a float
// target: [B, ...] -> [B].
at::Tensor denoising_error(const at::Tensor& prediction, const at::Tensor& target, ErrorReduction reduction);

// SISS importance weights (docs/methods.md §2.1, stable log-space form), no gradient:
// Delta = d_x - d_a with d_y = sum_d (m - gamma y)^2 / (2 sigma^2);
// w_x = sigmoid(-(Delta + logit(lambda))) / (1 - lambda), w_a = sigmoid(Delta + logit(lambda)) / lambda.
// m, x, a [B, ...]; gamma, sigma [B, 1, ...]. Returns ([B], [B]).
std::pair<at::Tensor, at::Tensor> siss_weights(const at::Tensor& m, const at::Tensor& x, const at::Tensor& a,
                                               const at::Tensor& gamma, const at::Tensor& sigma, double lambda);

// SISS loss terms on a mixture batch: prediction_x = f_theta(m, t, c_x), prediction_a =
// f_theta(m, t, c_a) (the same tensor when the conditions agree), f the model's parameterisation;
// targets y_x, y_a for x_0 = x, a with the noise that makes m: eps_y = (m - gamma y) / sigma and
// diffusion::training_target of (y, eps_y): eps_y (epsilon), gamma eps_y - sigma y = (gamma m - y) / sigma
// (v_prediction, as gamma^2 + sigma^2 = 1), y (sample). The SISS paper and code train epsilon only.
// L_x = mean_B w_x sum_d (p_x - y_x)^2, L_a = mean_B w_a time_weight forget_error(p_a - y_a).
struct SissTerms {
  at::Tensor retain;   // L_x
  at::Tensor forget;   // L_a
  at::Tensor weight_x, weight_a;
};
SissTerms siss_losses(const at::Tensor& prediction_x, const at::Tensor& prediction_a, const at::Tensor& m,
                      const at::Tensor& x, const at::Tensor& a, const at::Tensor& gamma, const at::Tensor& sigma,
                      double lambda, const at::Tensor& time_weight, const at::Tensor& masks,
                      const FrequencySelection& frequency, const std::string& prediction_type = "epsilon");

// g = g_x - (scaling_norm / |g_a|) g_a (the SISS repository's rescale); g_a is dropped
// when |g_a| < 1e-12 (nothing to rescale). Returns (g, |g_x|, |g_a|).
std::tuple<std::vector<at::Tensor>, double, double> siss_combine(const std::vector<at::Tensor>& retain_gradient,
                                                                 const std::vector<at::Tensor>& forget_gradient,
                                                                 double scaling_norm);

// EraseDiff (SISS repository): g = g_x + max(eta - <g_x, g_a> / |g_a|^2, 0) g_a.
// Returns (g, factor).
std::pair<std::vector<at::Tensor>, double> erasediff_combine(const std::vector<at::Tensor>& retain_gradient,
                                                             const std::vector<at::Tensor>& forget_gradient, double eta);

// NPO (docs/methods.md §4.2): L = mean_B (2 / beta) softplus(-beta_k (e_theta - e_ref)), with
// beta_k = beta * k. e_theta, e_ref [B] per-sample errors (e_ref without gradient).
at::Tensor npo_loss(const at::Tensor& error, const at::Tensor& reference_error, double beta, double beta_k);

// Diffusion-DPO (docs/methods.md §4.1): z = -(beta / 2) ((e_w - e_l) - (r_w - r_l)),
// L = mean_B softplus(-z). Returns (loss, implicit accuracy mean(z > 0)).
std::pair<at::Tensor, double> dpo_loss(const at::Tensor& winner_error, const at::Tensor& loser_error,
                                       const at::Tensor& reference_winner_error, const at::Tensor& reference_loser_error,
                                       double beta);

// f-divergence concept losses (docs/methods.md §5, project choice): per sample q = error / tau
// where error is the mean squared gap between the trained prediction under the target
// concept and the frozen prediction under the anchor; D2 = 2q.
//   mse: error (no tau); kl, reverse_kl: q; hellinger: 2 (1 - exp(-q/4));
//   chi2: exp(min(2q, 80)) - 1; js: log 2 - E_z softplus(-sqrt(2q) z - q) (Gauss-Hermite);
//   alpha: (1 - exp(-alpha (1 - alpha) q)) / (alpha (1 - alpha)).
// error [B] -> loss per sample [B].
at::Tensor f_divergence(const at::Tensor& error, const std::string& divergence, double tau, double alpha = 0.5);
const std::vector<std::string>& f_divergence_names();

}  // namespace lethe::unlearn
