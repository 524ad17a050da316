// Timestep selection for the forget term (docs/methods.md §3.1): forgetting is
// restricted to a window [t_min, t_max) and optionally weighted over t. The retain term
// keeps the full range.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

#include "diffusion/schedule.hpp"
#include "diffusion/timestep_distribution.hpp"

namespace lethe::unlearn {

struct TimestepSelectionConfig {
  int64_t t_min = 0;
  int64_t t_max = 1000;                // exclusive
  std::string weighting = "uniform";   // uniform | snr | min_snr | hann
  double min_snr_gamma = 5.0;
  // The window in noise levels instead (used when sigma_max > 0): the timesteps whose sigma
  // (NoiseSchedule::noise_levels: ComfyUI's sigma, sqrt((1 - abar) / abar), or s for flow
  // models) lies in [sigma_min, sigma_max]; t_min and t_max are then set from the model's
  // schedule (resolve_window), so one window means the same noise on every model family.
  double sigma_min = 0.0;
  double sigma_max = 0.0;

  template <typename Visitor>
  void visit(Visitor& v) {
    v("t_min", t_min);
    v("t_max", t_max);
    v("weighting", weighting);
    v("min_snr_gamma", min_snr_gamma);
    v("sigma_min", sigma_min);
    v("sigma_max", sigma_max);
  }
  void validate(const std::string& where) const;
  bool in_sigma() const { return sigma_max > 0; }
};

// The config with [t_min, t_max) set for `schedule`: unchanged for a window in t; for a window
// in sigma, t_min = the first t with sigma_t >= sigma_min and t_max = one past the last t with
// sigma_t <= sigma_max (noise levels increase with t). An empty window is an error naming both
// ranges.
TimestepSelectionConfig resolve_window(const TimestepSelectionConfig& config, const diffusion::NoiseSchedule& schedule);

class TimestepSelection {
 public:
  // `distribution`: how training draws t (null: uniform). A window in sigma is resolved for
  // `schedule` (config() then holds its t_min and t_max).
  TimestepSelection(const TimestepSelectionConfig& config, const diffusion::NoiseSchedule& schedule,
                    const diffusion::TimestepDistribution* distribution = nullptr);
  // t in {t_min .. t_max-1} from the training distribution truncated to the window, [count] int64.
  at::Tensor sample(int64_t count, at::Generator& generator) const;
  // Per-sample forget weight m(t) = 1[t in window] * w(t), [B] float; w has mean 1 under the
  // window's sampling distribution, so the weighting changes the shape, not the scale.
  at::Tensor weight(const at::Tensor& t) const;
  const TimestepSelectionConfig& config() const { return config_; }
  // The [T] weight table (for plots and tests).
  const at::Tensor& table() const { return table_; }
  bool is_full_range() const;
  // The weight table as a line chart (the selection node's preview), [1, 3, H, W] in [0, 1].
  at::Tensor draw_weights() const;

 private:
  TimestepSelectionConfig config_;
  int64_t num_timesteps_;
  diffusion::TimestepDistribution distribution_;
  at::Tensor table_;  // [T]
};

}  // namespace lethe::unlearn
