// Noise schedules and the closed-form relations between x_0, x_t, eps and the model output.
// Conventions (docs/methods.md §1.1, §1.2, §1.5): t is 0-indexed in {0..T-1}, t = 0 is the
// least noisy; x_t = gamma_t x_0 + sigma_t eps. DDPM (variance preserving): abar_t =
// prod_{s<=t} (1 - beta_s), gamma_t = sqrt(abar_t), sigma_t = sqrt(1 - abar_t). Flow matching
// (rectified flow, SD3/Flux): gamma_t = 1 - s_t, sigma_t = s_t for the model's sigma table s.
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
  std::string prediction_type = "epsilon";  // epsilon | v_prediction | sample (flow: flow tables only)

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

// The parameterisations a model's output can be in: epsilon, v_prediction, sample, flow (the
// velocity eps - x_0 of flow matching). Throws naming `where` for any other.
void check_prediction_type(const std::string& prediction_type, const std::string& where);

// The training target of a parameterisation for clean x0 noised with eps as gamma x0 + sigma
// eps: eps, v = gamma eps - sigma x0, x0, or the flow velocity eps - x0. gamma and sigma
// broadcast over x0 (e.g. [B, 1, ..., 1]). The one place the parameterisations' targets are
// written (NoiseSchedule::training_target, SISS's mixture targets).
at::Tensor training_target(const std::string& prediction_type, const at::Tensor& x0, const at::Tensor& eps,
                           const at::Tensor& gamma, const at::Tensor& sigma);

class NoiseSchedule {
 public:
  explicit NoiseSchedule(const ScheduleConfig& config = {});
  // A schedule given by its table abar [T] (a host model's own, e.g. ComfyUI's
  // 1 / (1 + sigma^2)) for a model predicting `prediction_type` (epsilon | v_prediction);
  // config().beta_schedule reads "table".
  static NoiseSchedule from_alphas_cumprod(const at::Tensor& alphas_cumprod,
                                           const std::string& prediction_type = "epsilon");
  // A flow-matching schedule given by its sigma table s [T], increasing inside (0, 1] (a host
  // model's own, time shift included): x_t = (1 - s_t) x_0 + s_t eps, the model predicts the
  // velocity eps - x_0 (prediction_type "flow"); config().beta_schedule reads "flow_table".
  // alphas_cumprod() holds the variance-preserving equivalent (1-s)^2 / ((1-s)^2 + s^2), the
  // same signal-to-noise ratio, so SNR weightings read the same table for every family.
  static NoiseSchedule from_flow_sigmas(const at::Tensor& sigmas);

  const ScheduleConfig& config() const { return config_; }
  int64_t num_timesteps() const { return config_.num_train_timesteps; }
  // [T] float32 tables, computed as diffusers computes them.
  const at::Tensor& betas() const { return betas_; }
  const at::Tensor& alphas_cumprod() const { return alphas_cumprod_; }
  // abar at an integer timestep; t < 0 gives 1 (the "set_alpha_to_one" convention).
  double alpha_cumprod(int64_t t) const;

  bool is_flow() const { return config_.prediction_type == "flow"; }

  // [T] float64: each timestep's noise level as ComfyUI names it (its sigma): s_t for a flow
  // schedule, sqrt((1 - abar_t) / abar_t) for a DDPM one.
  at::Tensor noise_levels() const;

  // Per-sample coefficients for t [B] (int64), shaped [B, 1, ..., 1] to broadcast over x of
  // rank `rank`: gamma_t (signal) and sigma_t (noise); DDPM: sqrt(abar_t), sqrt(1 - abar_t).
  at::Tensor signal_scale(const at::Tensor& t, int64_t rank) const;
  at::Tensor noise_scale(const at::Tensor& t, int64_t rank) const;

  // x_t = gamma_t x_0 + sigma_t noise. x_0, noise [B, ...]; t [B].
  at::Tensor add_noise(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& t) const;
  // eps from (x_t, x_0); x_0 from (x_t, eps); from v = sqrt(abar) eps - sqrt(1-abar) x_0 (training_target)
  // back to eps and x_0 (DDPM schedules only).
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
  at::Tensor signal_scales_;  // [T] gamma_t
  at::Tensor noise_scales_;   // [T] sigma_t
};

}  // namespace lethe::diffusion
