#include "core/loss_scaling.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

#include "core/error.hpp"

namespace lethe {

LossScaler::LossScaler(bool enabled, LossScalingOptions options)
    : enabled_(enabled),
      options_(options),
      scale_(at::full({1}, enabled ? options.initial_scale : 1.0, at::kFloat)),
      good_steps_(at::zeros({1}, at::kInt)) {}

double LossScaler::scale() const { return scale_.item<double>(); }

at::Tensor LossScaler::scaled(const at::Tensor& loss) const { return enabled_ ? loss * scale() : loss; }

bool LossScaler::unscale(const std::vector<at::Tensor>& gradients) const {
  std::vector<at::Tensor> defined;
  for (const at::Tensor& gradient : gradients)
    if (gradient.defined()) defined.push_back(gradient);
  if (defined.empty()) return true;
  const c10::Device device = defined.front().device();
  at::NoGradGuard no_grad;
  at::Tensor found_inf = at::zeros({1}, at::TensorOptions().dtype(at::kFloat).device(device));
  // Disabled: a multiplication by 1 is exact, so the same call serves as the finiteness check.
  at::Tensor inverse = (enabled_ ? scale_.reciprocal() : at::ones({1}, at::kFloat)).to(device);
  at::_amp_foreach_non_finite_check_and_unscale_(defined, found_inf, inverse);
  return found_inf.item<float>() == 0.0f;
}

void LossScaler::update(bool overflowed, const std::string& where) {
  if (!enabled_) return;
  // Checked before changing anything, so the state stays that of the last good step.
  check(!overflowed || scale() * options_.backoff_factor >= options_.minimum_scale, where,
        ": the fp16 gradients overflowed at every loss scale down to ", scale(),
        " (inf or NaN whatever the scale): this model does not train in fp16; use precision bf16 or fp32");
  const at::Tensor found_inf = at::full({1}, overflowed ? 1.0 : 0.0, at::kFloat);
  at::_amp_update_scale_(scale_, good_steps_, found_inf, options_.growth_factor, options_.backoff_factor,
                         options_.growth_interval);
}

nlohmann::json LossScaler::state() const {
  return {{"scale", scale()}, {"good_steps", good_steps_.item<int64_t>()}};
}

void LossScaler::restore(const nlohmann::json& state, const std::string& where) {
  check(state.is_object() && state.contains("scale") && state.contains("good_steps") && state.at("scale").is_number() &&
            state.at("good_steps").is_number_integer(),
        where, ": expected the loss scaler's state {\"scale\": <number>, \"good_steps\": <integer>}, got ", state.dump());
  const double scale = state.at("scale").get<double>();
  const int64_t good_steps = state.at("good_steps").get<int64_t>();
  check(std::isfinite(scale) && scale > 0 && good_steps >= 0, where,
        ": expected a positive loss scale and a count of good steps >= 0, got ", state.dump());
  scale_.fill_(scale);
  good_steps_.fill_(good_steps);
}

}  // namespace lethe
