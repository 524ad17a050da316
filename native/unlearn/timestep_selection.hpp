// Timestep selection for the forget term (docs/methods.md §3.1): forgetting is
// restricted to a window [t_min, t_max) and optionally weighted over t. The retain term
// keeps the full range.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/core/Tensor.h>

#include "diffusion/schedule.hpp"

namespace lethe::unlearn {

struct TimestepSelectionConfig {
  int64_t t_min = 0;
  int64_t t_max = 1000;                // exclusive
  std::string weighting = "uniform";   // uniform | snr | min_snr | hann
  double min_snr_gamma = 5.0;

  template <typename Visitor>
  void visit(Visitor& v) {
    v("t_min", t_min);
    v("t_max", t_max);
    v("weighting", weighting);
    v("min_snr_gamma", min_snr_gamma);
  }
  void validate(const std::string& where) const;
};

class TimestepSelection {
 public:
  TimestepSelection(const TimestepSelectionConfig& config, const diffusion::NoiseSchedule& schedule);
  // t ~ U{t_min .. t_max-1}, [count] int64.
  at::Tensor sample(int64_t count, at::Generator& generator) const;
  // t ~ U{0 .. T-1} (the retain term's range).
  at::Tensor sample_full(int64_t count, at::Generator& generator) const;
  // Per-sample forget weight m(t) = 1[t in window] * w(t), [B] float; w averages to 1 over
  // the window so the weighting changes the shape, not the scale.
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
  at::Tensor table_;  // [T]
};

}  // namespace lethe::unlearn
