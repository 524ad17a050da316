#include "unlearn/timestep_selection.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "draw/canvas.hpp"

namespace lethe::unlearn {

void TimestepSelectionConfig::validate(const std::string& where) const {
  check(t_min >= 0 && t_min < t_max, where, ": expected 0 <= t_min < t_max, got [", t_min, ", ", t_max, ")");
  check(sigma_max == 0 || (sigma_min >= 0 && sigma_min < sigma_max), where,
        ": a window in noise levels needs 0 <= sigma_min < sigma_max (sigma_max = 0: the window is in t), got [",
        sigma_min, ", ", sigma_max, "]");
  check(weighting == "uniform" || weighting == "snr" || weighting == "min_snr" || weighting == "hann", where,
        ".weighting: unknown '", weighting, "'; known: uniform, snr, min_snr, hann");
  check(min_snr_gamma > 0, where, ".min_snr_gamma: expected > 0, got ", min_snr_gamma);
}

TimestepSelectionConfig resolve_window(const TimestepSelectionConfig& config, const diffusion::NoiseSchedule& schedule) {
  config.validate("timestep selection");
  if (!config.in_sigma()) return config;
  const at::Tensor levels = schedule.noise_levels().to(at::kDouble);  // [T], increasing
  TimestepSelectionConfig out = config;
  out.t_min = levels.lt(config.sigma_min).sum().item<int64_t>();
  out.t_max = levels.le(config.sigma_max).sum().item<int64_t>();
  check(out.t_min < out.t_max, "timestep selection: no timestep of this model has a noise level sigma in [",
        config.sigma_min, ", ", config.sigma_max, "]; its ", levels.size(0), " levels run from ", levels[0].item<double>(),
        " to ", levels[-1].item<double>());
  return out;
}

TimestepSelection::TimestepSelection(const TimestepSelectionConfig& config, const diffusion::NoiseSchedule& schedule,
                                     const diffusion::TimestepDistribution* distribution)
    : config_(resolve_window(config, schedule)),
      num_timesteps_(schedule.num_timesteps()),
      distribution_(distribution != nullptr ? *distribution : diffusion::TimestepDistribution::uniform(num_timesteps_)) {
  check(config_.t_max <= num_timesteps_, "timestep selection: t_max ", config_.t_max, " exceeds the schedule's ",
        num_timesteps_, " steps");
  check(distribution_.num_timesteps() == num_timesteps_, "timestep selection: the training distribution covers ",
        distribution_.num_timesteps(), " timesteps, the schedule ", num_timesteps_);
  at::Tensor abar = schedule.alphas_cumprod().to(at::kDouble);
  at::Tensor snr = abar / (1.0 - abar);  // [T]
  at::Tensor t = at::arange(num_timesteps_, at::kDouble);
  at::Tensor inside = (t >= config_.t_min).logical_and(t < config_.t_max).to(at::kDouble);
  at::Tensor shape;
  if (config_.weighting == "uniform") {
    shape = at::ones_like(t);
  } else if (config_.weighting == "snr") {
    shape = snr;
  } else if (config_.weighting == "min_snr") {  // Hang et al.: min(SNR, gamma) / SNR
    shape = at::clamp_max(snr, config_.min_snr_gamma) / snr;
  } else {  // hann: a smooth bump over the window, zero at its edges
    const double width = static_cast<double>(config_.t_max - config_.t_min);
    shape = at::sin(M_PI * (t - config_.t_min + 0.5) / width).pow(2);
  }
  at::Tensor weights = shape * inside;
  // mean 1 under the window's sampling distribution (for uniform sampling: over the window)
  weights = weights / (weights * distribution_.probabilities(config_.t_min, config_.t_max)).sum();
  table_ = weights.to(at::kFloat);
}

at::Tensor TimestepSelection::sample(int64_t count, at::Generator& generator) const {
  return distribution_.sample(count, config_.t_min, config_.t_max, generator);
}

at::Tensor TimestepSelection::weight(const at::Tensor& t) const {
  return table_.index_select(0, t.to(at::kCPU, at::kLong)).to(t.device());
}

bool TimestepSelection::is_full_range() const {
  return config_.t_min == 0 && config_.t_max == num_timesteps_ && config_.weighting == "uniform";
}

at::Tensor TimestepSelection::draw_weights() const {
  const at::Tensor weights = table_.to(at::kDouble).contiguous();  // [T]
  std::vector<double> values(weights.data_ptr<double>(), weights.data_ptr<double>() + weights.numel());
  draw::Canvas canvas(520, 260);
  draw::draw_line_chart(canvas, {6, 6, 508, 248}, "forget weight m(t)", {{"m(t)", values, {}}}, "t");
  return canvas.tensor().unsqueeze(0);  // [1, 3, 260, 520]
}

}  // namespace lethe::unlearn
