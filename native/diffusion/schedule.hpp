// DDPM noise schedules and the closed-form relations between x_0, x_t, eps and v.
// Conventions (docs/methods.md §1.1, §1.2): t is 0-indexed in {0..T-1}, t = 0 is the
// least noisy; abar_t = prod_{s<=t} (1 - beta_s); x_t = sqrt(abar_t) x_0 + sqrt(1-abar_t) eps.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

namespace lethe::diffusion {

struct ScheduleConfig {
  std::string beta_schedule = "linear";  // linear | scaled_linear | squaredcos_cap_v2
  int64_t num_train_timesteps = 1000;
  double beta_start = 1e-4;
  double beta_end = 0.02;
  std::string prediction_type = "epsilon";  // epsilon | v_prediction | sample

  template <typename Visitor>
  void visit(Visitor& v) {
    v("beta_schedule", beta_schedule);
    v("num_train_timesteps", num_train_timesteps);
    v("beta_start", beta_start);
    v("beta_end", beta_end);
    v("prediction_type", prediction_type);
  }
  void validate(const std::string& where) const;

  // Stable Diffusion 1.x/2.x: scaled_linear 0.00085..0.012, 1000 steps.
  static ScheduleConfig stable_diffusion();
};

// The training target of a parameterisation (epsilon | v_prediction | sample) for clean x0
// noised with eps as gamma x0 + sigma eps: eps, v = gamma eps - sigma x0, or x0. gamma and sigma
// broadcast over x0 (e.g. [B, 1, ..., 1]). The one place the parameterisations' targets are
// written (NoiseSchedule::training_target, SISS's mixture targets).
at::Tensor training_target(const std::string& prediction_type, const at::Tensor& x0, const at::Tensor& eps,
                           const at::Tensor& gamma, const at::Tensor& sigma);

class NoiseSchedule {
 public:
  explicit NoiseSchedule(const ScheduleConfig& config = {});
  // A schedule given by its table abar [T] (a host model's own, e.g. ComfyUI's
  // 1 / (1 + sigma^2)), epsilon prediction; config().beta_schedule reads "table".
  static NoiseSchedule from_alphas_cumprod(const at::Tensor& alphas_cumprod);

  const ScheduleConfig& config() const { return config_; }
  int64_t num_timesteps() const { return config_.num_train_timesteps; }
  // [T] float32 tables, computed as diffusers computes them.
  const at::Tensor& betas() const { return betas_; }
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
  // abar at an integer timestep; t < 0 gives 1 (the "set_alpha_to_one" convention).
  double alpha_cumprod(int64_t t) const;

  // Per-sample coefficients for t [B] (int64), shaped [B, 1, ..., 1] to broadcast over x of
  // rank `rank`: sqrt(abar_t) and sqrt(1 - abar_t).
  at::Tensor sqrt_alpha_cumprod(const at::Tensor& t, int64_t rank) const;
  at::Tensor sqrt_one_minus_alpha_cumprod(const at::Tensor& t, int64_t rank) const;

  // x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) noise. x_0, noise [B, ...]; t [B].
  at::Tensor add_noise(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& t) const;
  // eps from (x_t, x_0); x_0 from (x_t, eps); from v = sqrt(abar) eps - sqrt(1-abar) x_0 (training_target)
  // back to eps and x_0.
  at::Tensor eps_from_x0(const at::Tensor& x_t, const at::Tensor& x0, const at::Tensor& t) const;
  at::Tensor x0_from_eps(const at::Tensor& x_t, const at::Tensor& eps, const at::Tensor& t) const;
  at::Tensor eps_from_v(const at::Tensor& x_t, const at::Tensor& v, const at::Tensor& t) const;
  at::Tensor x0_from_v(const at::Tensor& x_t, const at::Tensor& v, const at::Tensor& t) const;
  // Converts a model output of config().prediction_type into (x0_hat, eps_hat).
  std::pair<at::Tensor, at::Tensor> split_prediction(const at::Tensor& x_t, const at::Tensor& model_output,
                                                     const at::Tensor& t) const;
  // The training target of config().prediction_type for (x_0, eps, t).
  at::Tensor training_target(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& t) const;

 private:
  void fill_tables();
  at::Tensor gather(const at::Tensor& table, const at::Tensor& t, int64_t rank) const;
  ScheduleConfig config_;
  at::Tensor betas_;
  at::Tensor alphas_cumprod_;
  at::Tensor sqrt_alphas_cumprod_;
  at::Tensor sqrt_one_minus_alphas_cumprod_;
};

}  // namespace lethe::diffusion
