// How training draws the timestep t in 0..T-1: uniformly (DDPM training, SD1.x/2.x, SDXL) or
// logit-normally (SD3's rectified-flow training: u = sigmoid(n), n ~ N(mean, std), t = floor(u T);
// the model's time shift then acts through its own sigma table). "auto" picks logit-normal for
// flow-matching schedules and uniform otherwise. A window [t_min, t_max) truncates the
// distribution (its probabilities renormalised), as the forget term's timestep selection does.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include "diffusion/schedule.hpp"

namespace lethe::diffusion {

struct TimestepDistributionConfig {
  std::string kind = "auto";  // auto | uniform | logit_normal
  double logit_mean = 0.0;    // of the normal n (SD3: 0)
  double logit_std = 1.0;     // (SD3: 1)

  template <typename Visitor>
  void visit(Visitor& v) {
    v("kind", kind);
    v("logit_mean", logit_mean);
    v("logit_std", logit_std);
  }
  void validate(const std::string& where) const;
};

class TimestepDistribution {
 public:
  // Resolves "auto" against `schedule` (flow -> logit_normal, else uniform).
  TimestepDistribution(const TimestepDistributionConfig& config, const NoiseSchedule& schedule);
  // Uniform over all T timesteps.
  static TimestepDistribution uniform(int64_t num_timesteps);

  // [count] int64 timesteps in [t_min, t_max). Uniform draws are at::randint's, exactly.
  at::Tensor sample(int64_t count, int64_t t_min, int64_t t_max, at::Generator& generator) const;
  at::Tensor sample(int64_t count, at::Generator& generator) const { return sample(count, 0, num_timesteps_, generator); }
  // P(t) for t in 0..T-1 restricted to [t_min, t_max) and renormalised, [T] double.
  at::Tensor probabilities(int64_t t_min, int64_t t_max) const;

  const std::string& kind() const { return kind_; }  // uniform | logit_normal (resolved)
  const TimestepDistributionConfig& config() const { return config_; }
  int64_t num_timesteps() const { return num_timesteps_; }
  // One line for people: "uniform over t" or "logit-normal: t = floor(T sigmoid(n)), n ~ N(0, 1)".
  std::string describe() const;

 private:
  TimestepDistribution(const TimestepDistributionConfig& config, std::string kind, int64_t num_timesteps);
  // F(t / T): the probability that t' < t, for t in 0..T (the logit-normal CDF of u = t / T).
  double cdf(int64_t t) const;
  // Throws unless 0 <= t_min < t_max <= T.
  void check_window(int64_t t_min, int64_t t_max) const;

  TimestepDistributionConfig config_;
  std::string kind_;
  int64_t num_timesteps_;
};

}  // namespace lethe::diffusion
