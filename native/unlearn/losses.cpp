#include "unlearn/losses.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "diffusion/schedule.hpp"
#include "unlearn/objective.hpp"

namespace lethe::unlearn {

at::Tensor denoising_error(const at::Tensor& prediction, const at::Tensor& target, ErrorReduction reduction) {
  at::Tensor squared = (prediction.to(at::kFloat) - target).pow(2).flatten(1);  // [B, d]
  return reduction == ErrorReduction::sum ? squared.sum(1) : squared.mean(1);
}

std::pair<at::Tensor, at::Tensor> siss_weights(const at::Tensor& m, const at::Tensor& x, const at::Tensor& a,
                                               const at::Tensor& gamma, const at::Tensor& sigma, double lambda) {
  check(lambda > 0 && lambda < 1, "SISS: lambda must be in (0, 1), got ", lambda);
  at::NoGradGuard no_grad;
  at::Tensor m64 = m.to(at::kDouble), g = gamma.to(at::kDouble), s = sigma.to(at::kDouble);
  std::vector<int64_t> dims;
  for (int64_t d = 1; d < m.dim(); ++d) dims.push_back(d);
  at::Tensor variance = (2.0 * s * s).flatten();                                       // [B]
  at::Tensor d_x = (m64 - g * x.to(at::kDouble)).pow(2).sum(dims) / variance;          // [B]
  at::Tensor d_a = (m64 - g * a.to(at::kDouble)).pow(2).sum(dims) / variance;          // [B]
  const double logit = std::log(lambda / (1.0 - lambda));
  at::Tensor delta = d_x - d_a;
  at::Tensor w_x = at::sigmoid(-(delta + logit)) / (1.0 - lambda);
  at::Tensor w_a = at::sigmoid(delta + logit) / lambda;
  return {w_x.to(at::kFloat), w_a.to(at::kFloat)};
}

SissTerms siss_losses(const at::Tensor& prediction_x, const at::Tensor& prediction_a, const at::Tensor& m,
                      const at::Tensor& x, const at::Tensor& a, const at::Tensor& gamma, const at::Tensor& sigma,
                      double lambda, const at::Tensor& time_weight, const at::Tensor& masks,
                      const FrequencySelection& frequency, const std::string& prediction_type, const at::Tensor& tau) {
  diffusion::check_prediction_type(prediction_type, "SISS");
  // The target for x_0 = y of the noised m, with the noise that makes m from y (see the header). [B, ...]
  auto target = [&](const at::Tensor& y) {
    return diffusion::training_target(prediction_type, y, (m - gamma * y) / sigma, gamma, sigma).detach();
  };
  SissTerms terms;
  std::tie(terms.weight_x, terms.weight_a) = siss_weights(m, x, a, gamma, sigma, lambda);
  at::Tensor retain_error = denoising_error(prediction_x, target(x), ErrorReduction::sum);  // [B]
  at::Tensor forget_error_ = forget_error(prediction_a.to(at::kFloat) - target(a), masks, frequency, tau);  // [B]
  terms.retain = (terms.weight_x * retain_error).mean();
  at::Tensor forget_weight = terms.weight_a * (time_weight.defined() ? time_weight.to(at::kFloat) : at::ones_like(terms.weight_a));
  // Never multiply an inf by a zero weight: zero-weight samples contribute exactly 0.
  terms.forget = at::where(forget_weight > 0, forget_weight * forget_error_, at::zeros_like(forget_error_)).mean();
  return terms;
}

std::tuple<std::vector<at::Tensor>, double, double> siss_combine(const std::vector<at::Tensor>& retain_gradient,
                                                                 const std::vector<at::Tensor>& forget_gradient,
                                                                 double scaling_norm) {
  const double retain_norm = norm_of(retain_gradient), forget_norm = norm_of(forget_gradient);
  const double factor = forget_norm < 1e-12 ? 0.0 : scaling_norm / forget_norm;
  at::NoGradGuard no_grad;
  return {at::_foreach_add(retain_gradient, forget_gradient, -factor), retain_norm, forget_norm};
}

std::pair<std::vector<at::Tensor>, double> erasediff_combine(const std::vector<at::Tensor>& retain_gradient,
                                                             const std::vector<at::Tensor>& forget_gradient, double eta) {
  const double forget_norm = norm_of(forget_gradient);
  double factor = 0.0;
  if (forget_norm > 1e-12) factor = std::max(eta - dot_of(retain_gradient, forget_gradient) / (forget_norm * forget_norm), 0.0);
  at::NoGradGuard no_grad;
  return {at::_foreach_add(retain_gradient, forget_gradient, factor), factor};
}

at::Tensor npo_loss(const at::Tensor& error, const at::Tensor& reference_error, double beta, double beta_k) {
  check(beta > 0 && beta_k > 0, "NPO: beta and beta_k must be > 0, got ", beta, " and ", beta_k);
  return (2.0 / beta * at::softplus(-beta_k * (error - reference_error.detach()))).mean();
}

std::pair<at::Tensor, double> dpo_loss(const at::Tensor& winner_error, const at::Tensor& loser_error,
                                       const at::Tensor& reference_winner_error, const at::Tensor& reference_loser_error,
                                       double beta) {
  check(beta > 0, "DPO: beta must be > 0, got ", beta);
  at::Tensor z = -(beta / 2.0) * ((winner_error - loser_error) -
                                  (reference_winner_error.detach() - reference_loser_error.detach()));  // [B]
  const double accuracy = (z > 0).to(at::kDouble).mean().item<double>();
  return {at::softplus(-z).mean(), accuracy};
}

const std::vector<std::string>& f_divergence_names() {
  static const std::vector<std::string> names = {"mse", "kl", "reverse_kl", "js", "hellinger", "chi2", "alpha"};
  return names;
}

namespace {

// Gauss-Hermite nodes and weights for E_{z ~ N(0,1)} f(z) = sum_i w_i f(sqrt(2) x_i) / sqrt(pi),
// 32 points, computed once with the Golub-Welsch eigenvalue method.
const std::pair<at::Tensor, at::Tensor>& normal_quadrature() {
  static const std::pair<at::Tensor, at::Tensor> rule = [] {
    const int64_t n = 32;
    at::Tensor jacobi = at::zeros({n, n}, at::kDouble);
    for (int64_t i = 1; i < n; ++i) {
      const double b = std::sqrt(i / 2.0);
      jacobi[i][i - 1] = b;
      jacobi[i - 1][i] = b;
    }
    auto [nodes, vectors] = at::linalg_eigh(jacobi);
    at::Tensor weights = vectors[0].pow(2);  // already normalised to sum 1 (w_i / sqrt(pi))
    return std::make_pair((nodes * std::sqrt(2.0)).to(at::kFloat), weights.to(at::kFloat));
  }();
  return rule;
}

}  // namespace

constexpr double kChi2Knee = 20.0;

at::Tensor f_divergence(const at::Tensor& error, const std::string& divergence, double tau, double alpha) {
  check(tau > 0, "f-divergence: tau must be > 0, got ", tau);
  if (divergence == "mse") return error;
  at::Tensor q = error / tau;  // [B]
  if (divergence == "kl" || divergence == "reverse_kl") return q;  // equal-variance Gaussians: both D2 / 2
  if (divergence == "hellinger") return 2.0 * (1.0 - at::exp(-q / 4.0));
  if (divergence == "chi2") {
    // exp(z) - 1 up to z = 20, then its tangent: the slope stays finite and non-zero, so a far
    // sample still pulls (and a step's gradient norm cannot overflow float32).
    at::Tensor z = 2.0 * q;
    at::Tensor knee = at::clamp_max(z, kChi2Knee);
    return at::exp(knee) * (1.0 + (z - knee)) - 1.0;
  }
  if (divergence == "alpha") {
    check(alpha > 0 && alpha < 1, "alpha divergence: alpha must be in (0, 1), got ", alpha);
    const double c = alpha * (1.0 - alpha);
    return (1.0 - at::exp(-c * q)) / c;
  }
  if (divergence == "js") {
    const auto& [nodes, weights] = normal_quadrature();
    at::Tensor safe = q.clamp_min(1e-8);                                       // no infinite slope at q = 0
    at::Tensor s = at::sqrt(2.0 * safe).unsqueeze(1);                          // [B, 1]
    at::Tensor inner = at::softplus(-s * nodes.to(q.device()).unsqueeze(0) - safe.unsqueeze(1));  // [B, 32]
    return std::log(2.0) - (inner * weights.to(q.device()).unsqueeze(0)).sum(1);
  }
  throw Error(str("unknown f-divergence '", divergence, "'; known: ", join(f_divergence_names())));
}

const std::vector<std::string>& variational_divergence_names() {
  static const std::vector<std::string> names = {"kl", "reverse_kl", "js", "hellinger", "chi2", "tv"};
  return names;
}

namespace {

void check_variational(const std::string& divergence) {
  const auto& names = variational_divergence_names();
  check(std::find(names.begin(), names.end(), divergence) != names.end(), "variational f-divergence: unknown '",
        divergence, "'; known: ", join(names));
}

}  // namespace

at::Tensor critic_activation(const at::Tensor& v, const std::string& divergence) {
  check_variational(divergence);
  if (divergence == "reverse_kl") return -at::exp(-v);
  if (divergence == "hellinger") return 1.0 - at::exp(-v);
  if (divergence == "js") return std::log(2.0) - at::softplus(-v);
  if (divergence == "tv") return 0.5 * at::tanh(v);
  return v;  // kl, chi2
}

at::Tensor critic_conjugate(const at::Tensor& v, const std::string& divergence) {
  check_variational(divergence);
  if (divergence == "kl") return at::exp(v - 1.0);
  if (divergence == "reverse_kl") return v - 1.0;
  if (divergence == "hellinger") return at::exp(v) - 1.0;
  if (divergence == "js") return at::softplus(v) - std::log(2.0);
  if (divergence == "chi2") return 0.25 * v * v + v;
  return 0.5 * at::tanh(v);  // tv
}

at::Tensor critic_loss(const at::Tensor& real_logits, const at::Tensor& fake_logits, const at::Tensor& mask,
                       const std::string& divergence) {
  at::Tensor gap = critic_conjugate(fake_logits, divergence) - critic_activation(real_logits, divergence);  // [B, 1, h, w]
  if (!mask.defined()) return gap.mean();
  at::Tensor resized = at::upsample_nearest2d(mask.to(gap.options()), {gap.size(2), gap.size(3)});  // [B, 1, h, w]
  return (gap * resized).sum() / (resized.sum() + 1e-6);
}

at::Tensor generator_loss(const at::Tensor& fake_logits, const std::string& divergence) {
  return -critic_conjugate(fake_logits, divergence).flatten(1).mean(1);
}

}  // namespace lethe::unlearn
