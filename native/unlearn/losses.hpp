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
// L_x = mean_B w_x sum_d (p_x - y_x)^2, L_a = mean_B w_a time_weight forget_error(p_a - y_a);
// tau [B] = t / (T - 1) when the frequency cutoff depends on t.
struct SissTerms {
  at::Tensor retain;   // L_x
  at::Tensor forget;   // L_a
  at::Tensor weight_x, weight_a;
};
SissTerms siss_losses(const at::Tensor& prediction_x, const at::Tensor& prediction_a, const at::Tensor& m,
                      const at::Tensor& x, const at::Tensor& a, const at::Tensor& gamma, const at::Tensor& sigma,
                      double lambda, const at::Tensor& time_weight, const at::Tensor& masks,
                      const FrequencySelection& frequency, const std::string& prediction_type = "epsilon",
                      const at::Tensor& tau = {});

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

// f-divergence concept losses, closed form (docs/methods.md §5.1): per sample q = error / tau
// where error is the mean squared gap between the trained prediction under the target
// concept and the frozen prediction under the anchor; D2 = 2q. The default tau = 2 makes chi2
// and hellinger the f-divergence paper's closed-form losses (sigma = 1) up to constants.
//   mse: error (no tau); kl, reverse_kl: q; hellinger: 2 (1 - exp(-q/4));
//   chi2: exp(2q) - 1, continued linearly above 2q = 20 (finite, non-zero slopes);
//   js: log 2 - E_z softplus(-sqrt(2q) z - q) (Gauss-Hermite; a Lethe construction);
//   alpha: (1 - exp(-alpha (1 - alpha) q)) / (alpha (1 - alpha)).
// error [B] -> loss per sample [B].
at::Tensor f_divergence(const at::Tensor& error, const std::string& divergence, double tau, double alpha = 0.5);
const std::vector<std::string>& f_divergence_names();

// Variational f-divergences (docs/methods.md §5.2; Nowozin et al.'s f-GAN pairs): a critic's
// logits v give T = g_f(v) and D_f(P || Q) >= E_P[T] - E_Q[f*(T)]. Activation g_f and the
// composed conjugate f*(g_f(v)) in stable closed forms:
//   kl: v, exp(v - 1);  reverse_kl: -exp(-v), v - 1;  hellinger: 1 - exp(-v), exp(v) - 1;
//   js: log 2 - softplus(-v), softplus(v) - log 2;  chi2: v, v^2/4 + v;  tv: tanh(v)/2, tanh(v)/2.
const std::vector<std::string>& variational_divergence_names();
at::Tensor critic_activation(const at::Tensor& logits, const std::string& divergence);  // g_f(v)
at::Tensor critic_conjugate(const at::Tensor& logits, const std::string& divergence);   // f*(g_f(v))
// The critic's loss, -(the bound) as a masked mean over patches:
// sum(mask (f*(g(v_q)) - g(v_p))) / (sum(mask) + 1e-6). Logits [B, 1, h, w]; mask [B, 1, H, W]
// is resized to h x w (nearest), undefined = all ones. [] scalar
at::Tensor critic_loss(const at::Tensor& real_logits, const at::Tensor& fake_logits, const at::Tensor& mask,
                       const std::string& divergence);
// The trained model's (generator's) loss per sample: -mean over patches of f*(g(v_q)). [B, 1, h, w] -> [B]
at::Tensor generator_loss(const at::Tensor& fake_logits, const std::string& divergence);

}  // namespace lethe::unlearn
