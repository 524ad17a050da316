#include "diffusion/schedule.hpp"

#include <cmath>
#include <vector>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::diffusion {

void ScheduleConfig::validate(const std::string& where) const {
  check(beta_schedule == "linear" || beta_schedule == "scaled_linear" || beta_schedule == "squaredcos_cap_v2",
        where, ".beta_schedule: unknown schedule '", beta_schedule,
        "'; known: linear, scaled_linear, squaredcos_cap_v2");
  check(num_train_timesteps >= 2, where, ".num_train_timesteps: expected >= 2, got ", num_train_timesteps);
  check(beta_start > 0 && beta_end > 0 && beta_start < 1 && beta_end < 1, where,
        ": beta_start and beta_end must be in (0, 1), got ", beta_start, " and ", beta_end);
  check_prediction_type(prediction_type, where + ".prediction_type");
  check(prediction_type != "flow", where,
        ".prediction_type: flow needs a flow-matching sigma table (a flow model's own), not a beta schedule");
}

void check_prediction_type(const std::string& prediction_type, const std::string& where) {
  check(prediction_type == "epsilon" || prediction_type == "v_prediction" || prediction_type == "sample" ||
            prediction_type == "flow",
        where, ": unknown prediction type '", prediction_type, "'; known: epsilon, v_prediction, sample, flow");
}

ScheduleConfig ScheduleConfig::stable_diffusion() {
  ScheduleConfig config;
  config.beta_schedule = "scaled_linear";
  config.beta_start = 0.00085;
  config.beta_end = 0.012;
  return config;
}

NoiseSchedule::NoiseSchedule(const ScheduleConfig& config) : config_(config) {
  config_.validate("noise schedule");
  // The tables are computed the way diffusers computes them (float32 linspace and cumprod),
  // so a model trained with diffusers sees exactly the abar it was trained with.
  const int64_t steps = config.num_train_timesteps;
  if (config.beta_schedule == "linear") {
    betas_ = at::linspace(config.beta_start, config.beta_end, steps, at::kFloat);
  } else if (config.beta_schedule == "scaled_linear") {
    betas_ = at::linspace(std::sqrt(config.beta_start), std::sqrt(config.beta_end), steps, at::kFloat).pow(2);
  } else {  // squaredcos_cap_v2 (Nichol & Dhariwal), capped at 0.999, computed in float64
    auto alpha_bar = [](double s) {
      const double angle = (s + 0.008) / 1.008 * M_PI / 2.0;
      return std::cos(angle) * std::cos(angle);
    };
    std::vector<double> betas(static_cast<size_t>(steps));
    for (int64_t t = 0; t < steps; ++t) {
      const double t1 = static_cast<double>(t) / steps, t2 = static_cast<double>(t + 1) / steps;
      betas[t] = std::min(1.0 - alpha_bar(t2) / alpha_bar(t1), 0.999);
    }
    betas_ = at::tensor(betas, at::kDouble).to(at::kFloat);
  }
  alphas_cumprod_ = at::cumprod(1.0 - betas_, 0);                    // [T] float32
  fill_tables();
}

namespace {

// beta_t = 1 - abar_t / abar_{t-1} (abar_{-1} = 1) of a table abar [T].
at::Tensor betas_of(const at::Tensor& alphas_cumprod) {
  return 1.0 - alphas_cumprod / at::cat({at::ones({1}), alphas_cumprod.slice(0, 0, -1)});
}

}  // namespace

NoiseSchedule NoiseSchedule::from_alphas_cumprod(const at::Tensor& alphas_cumprod, const std::string& prediction_type) {
  check(alphas_cumprod.dim() == 1 && alphas_cumprod.size(0) >= 2, "noise schedule: expected alphas_cumprod [T], got ",
        alphas_cumprod.sizes());
  check(prediction_type == "epsilon" || prediction_type == "v_prediction", "noise schedule: a table of alphas_cumprod ",
        "is for epsilon or v_prediction models, got '", prediction_type, "'");
  NoiseSchedule schedule;
  schedule.config_.beta_schedule = "table";
  schedule.config_.num_train_timesteps = alphas_cumprod.size(0);
  schedule.config_.prediction_type = prediction_type;
  schedule.alphas_cumprod_ = alphas_cumprod.to(at::kCPU, at::kFloat).contiguous();
  schedule.betas_ = betas_of(schedule.alphas_cumprod_);
  schedule.fill_tables();
  return schedule;
}

NoiseSchedule NoiseSchedule::from_flow_sigmas(const at::Tensor& sigmas) {
  check(sigmas.dim() == 1 && sigmas.size(0) >= 2, "noise schedule: expected the flow sigmas [T], got ", sigmas.sizes());
  at::Tensor s = sigmas.to(at::kCPU, at::kDouble).contiguous();
  const double first = s[0].item<double>(), last = s[-1].item<double>();
  check(first > 0.0 && last <= 1.0 && (s.slice(0, 1) > s.slice(0, 0, -1)).all().item<bool>(),
        "noise schedule: expected flow sigmas increasing inside (0, 1], got ", first, " .. ", last);
  NoiseSchedule schedule;
  schedule.config_.beta_schedule = "flow_table";
  schedule.config_.num_train_timesteps = sigmas.size(0);
  schedule.config_.prediction_type = "flow";
  at::Tensor gamma = 1.0 - s;
  schedule.alphas_cumprod_ = (gamma * gamma / (gamma * gamma + s * s)).to(at::kFloat);  // same SNR gamma^2 / sigma^2
  schedule.betas_ = betas_of(schedule.alphas_cumprod_);
  schedule.signal_scales_ = gamma.to(at::kFloat);
  schedule.noise_scales_ = s.to(at::kFloat);
  return schedule;
}

void NoiseSchedule::fill_tables() {
  signal_scales_ = alphas_cumprod_.sqrt();
  noise_scales_ = (1.0 - alphas_cumprod_).sqrt();
}

double NoiseSchedule::alpha_cumprod(int64_t t) const {
  check(t < num_timesteps(), "timestep ", t, " out of range [0, ", num_timesteps(), ")");
  return t < 0 ? 1.0 : alphas_cumprod_[t].item<double>();
}

at::Tensor NoiseSchedule::gather(const at::Tensor& table, const at::Tensor& t, int64_t rank) const {
  check(t.dim() == 1, "timesteps must be a 1-D tensor [B], got ", t.sizes());
  at::Tensor index = t.to(at::kCPU, at::kLong);
  check(index.numel() == 0 || (index.min().item<int64_t>() >= 0 && index.max().item<int64_t>() < num_timesteps()),
        "timesteps out of range [0, ", num_timesteps(), ")");
  std::vector<int64_t> shape(static_cast<size_t>(rank), 1);
  shape[0] = t.size(0);
  return table.index_select(0, index).view(shape).to(t.device());  // [B, 1, ..., 1]
}

at::Tensor NoiseSchedule::noise_levels() const {
  if (is_flow()) return noise_scales_.to(at::kDouble);
  at::Tensor abar = alphas_cumprod_.to(at::kDouble);
  return ((1.0 - abar) / abar).sqrt();
}

at::Tensor NoiseSchedule::signal_scale(const at::Tensor& t, int64_t rank) const { return gather(signal_scales_, t, rank); }
at::Tensor NoiseSchedule::noise_scale(const at::Tensor& t, int64_t rank) const { return gather(noise_scales_, t, rank); }

at::Tensor NoiseSchedule::add_noise(const at::Tensor& x0, const at::Tensor& noise, const at::Tensor& t) const {
  const int64_t rank = x0.dim();
  return signal_scale(t, rank).to(x0.dtype()) * x0 + noise_scale(t, rank).to(x0.dtype()) * noise;
}

at::Tensor NoiseSchedule::eps_from_x0(const at::Tensor& x_t, const at::Tensor& x0, const at::Tensor& t) const {
  const int64_t rank = x_t.dim();
  return (x_t - signal_scale(t, rank) * x0) / noise_scale(t, rank);
}

at::Tensor NoiseSchedule::x0_from_eps(const at::Tensor& x_t, const at::Tensor& eps, const at::Tensor& t) const {
  const int64_t rank = x_t.dim();
  return (x_t - noise_scale(t, rank) * eps) / signal_scale(t, rank);
}

at::Tensor NoiseSchedule::eps_from_v(const at::Tensor& x_t, const at::Tensor& v, const at::Tensor& t) const {
  check(!is_flow(), "noise schedule: v-prediction relations on a flow-matching schedule");
  const int64_t rank = x_t.dim();
  return noise_scale(t, rank) * x_t + signal_scale(t, rank) * v;
}

at::Tensor NoiseSchedule::x0_from_v(const at::Tensor& x_t, const at::Tensor& v, const at::Tensor& t) const {
  check(!is_flow(), "noise schedule: v-prediction relations on a flow-matching schedule");
  const int64_t rank = x_t.dim();
  return signal_scale(t, rank) * x_t - noise_scale(t, rank) * v;
}

std::pair<at::Tensor, at::Tensor> NoiseSchedule::split_prediction(const at::Tensor& x_t,
                                                                  const at::Tensor& model_output,
                                                                  const at::Tensor& t) const {
  if (config_.prediction_type == "epsilon") return {x0_from_eps(x_t, model_output, t), model_output};
  if (config_.prediction_type == "v_prediction")
    return {x0_from_v(x_t, model_output, t), eps_from_v(x_t, model_output, t)};
  if (config_.prediction_type == "flow") {  // x_t = x_0 + sigma u = eps - gamma u for u = eps - x_0
    const int64_t rank = x_t.dim();
    return {x_t - noise_scale(t, rank) * model_output, x_t + signal_scale(t, rank) * model_output};
  }
  return {model_output, eps_from_x0(x_t, model_output, t)};  // "sample"
}

at::Tensor training_target(const std::string& prediction_type, const at::Tensor& x0, const at::Tensor& eps,
                           const at::Tensor& gamma, const at::Tensor& sigma) {
  if (prediction_type == "epsilon") return eps;
  if (prediction_type == "v_prediction") return gamma * eps - sigma * x0;
  if (prediction_type == "flow") return eps - x0;
  check_prediction_type(prediction_type, "training target");
  return x0;
}

at::Tensor NoiseSchedule::training_target(const at::Tensor& x0, const at::Tensor& eps, const at::Tensor& t) const {
  const int64_t rank = x0.dim();
  return diffusion::training_target(config_.prediction_type, x0, eps, signal_scale(t, rank),
                                    noise_scale(t, rank));
}

}  // namespace lethe::diffusion
