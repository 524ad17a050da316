#include "diffusion/timestep_distribution.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::diffusion {

void TimestepDistributionConfig::validate(const std::string& where) const {
  check(kind == "auto" || kind == "uniform" || kind == "logit_normal", where, ".kind: unknown '", kind,
        "'; known: auto, uniform, logit_normal");
  check(std::isfinite(logit_mean), where, ".logit_mean: expected a finite number, got ", logit_mean);
  check(std::isfinite(logit_std) && logit_std > 0, where, ".logit_std: expected > 0, got ", logit_std);
}

TimestepDistribution::TimestepDistribution(const TimestepDistributionConfig& config, std::string kind, int64_t num_timesteps)
    : config_(config), kind_(std::move(kind)), num_timesteps_(num_timesteps) {
  config_.validate("timestep distribution");
  check(num_timesteps_ >= 1, "timestep distribution: expected at least one timestep, got ", num_timesteps_);
}

TimestepDistribution::TimestepDistribution(const TimestepDistributionConfig& config, const NoiseSchedule& schedule)
    : TimestepDistribution(config,
                           config.kind != "auto" ? config.kind : schedule.is_flow() ? "logit_normal" : "uniform",
                           schedule.num_timesteps()) {}

TimestepDistribution TimestepDistribution::uniform(int64_t num_timesteps) {
  TimestepDistributionConfig config;
  config.kind = "uniform";
  return TimestepDistribution(config, "uniform", num_timesteps);
}

double TimestepDistribution::cdf(int64_t t) const {
  if (t <= 0) return 0.0;
  if (t >= num_timesteps_) return 1.0;
  const double u = static_cast<double>(t) / static_cast<double>(num_timesteps_);
  const double z = (std::log(u / (1.0 - u)) - config_.logit_mean) / config_.logit_std;
  return 0.5 * std::erfc(-z / std::sqrt(2.0));  // Phi(z)
}

void TimestepDistribution::check_window(int64_t t_min, int64_t t_max) const {
  check(0 <= t_min && t_min < t_max && t_max <= num_timesteps_, "timestep distribution: expected a window inside [0, ",
        num_timesteps_, "), got [", t_min, ", ", t_max, ")");
}

at::Tensor TimestepDistribution::sample(int64_t count, int64_t t_min, int64_t t_max, at::Generator& generator) const {
  check_window(t_min, t_max);
  if (kind_ == "uniform") return at::randint(t_min, t_max, {count}, generator, at::kLong);
  // Inverse CDF inside the window: p ~ U(F(t_min), F(t_max)), n = Phi^-1(p), t = floor(T sigmoid(n)).
  const double low = cdf(t_min), high = cdf(t_max);
  check(high > low, "timestep distribution: the window [", t_min, ", ", t_max, ") has probability ", high - low,
        " under ", describe());
  at::Tensor p = at::rand({count}, generator, at::kDouble) * (high - low) + low;  // [count]
  at::Tensor n = config_.logit_mean + config_.logit_std * std::sqrt(2.0) * at::erfinv(2.0 * p - 1.0);
  at::Tensor t = at::floor(at::sigmoid(n) * static_cast<double>(num_timesteps_)).to(at::kLong);
  return t.clamp(t_min, t_max - 1);  // rounding at the window's edges
}

at::Tensor TimestepDistribution::probabilities(int64_t t_min, int64_t t_max) const {
  check_window(t_min, t_max);
  at::Tensor out = at::zeros({num_timesteps_}, at::kDouble);
  auto values = out.accessor<double, 1>();
  for (int64_t t = t_min; t < t_max; ++t) values[t] = kind_ == "uniform" ? 1.0 : cdf(t + 1) - cdf(t);
  const double total = out.sum().item<double>();
  check(total > 0, "timestep distribution: the window [", t_min, ", ", t_max, ") has probability 0 under ", describe());
  return out / total;
}

std::string TimestepDistribution::describe() const {
  if (kind_ == "uniform") return "uniform over t";
  return str("logit-normal: t = floor(", num_timesteps_, " sigmoid(n)), n ~ N(", config_.logit_mean, ", ",
             config_.logit_std, ")");
}

}  // namespace lethe::diffusion
