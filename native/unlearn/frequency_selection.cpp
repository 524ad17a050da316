#include "unlearn/frequency_selection.hpp"

#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::unlearn {

void FrequencySelectionConfig::validate(const std::string& where) const {
  check(filter == "none" || filter == "lowpass" || filter == "highpass" || filter == "bandpass", where,
        ".filter: unknown '", filter, "'; known: none, lowpass, highpass, bandpass");
  check(shape == "radial" || shape == "square", where, ".shape: unknown '", shape, "'; known: radial, square");
  check(profile == "hard" || profile == "butterworth" || profile == "gaussian", where, ".profile: unknown '", profile,
        "'; known: hard, butterworth, gaussian");
  check(cutoff > 0, where, ".cutoff: expected > 0 (a fraction of Nyquist), got ", cutoff);
  check(filter != "bandpass" || cutoff_high > cutoff, where, ".cutoff_high: expected > cutoff (", cutoff, "), got ",
        cutoff_high);
  check(order >= 1, where, ".order: expected >= 1, got ", order);
  check(cutoff_end >= 0, where, ".cutoff_end: expected >= 0 (0 = a constant cutoff), got ", cutoff_end);
  check(cutoff_end == 0 || filter != "bandpass" || cutoff_high > cutoff_end, where,
        ".cutoff_high: expected > cutoff_end (", cutoff_end, "), got ", cutoff_high);
}

FrequencySelection::FrequencySelection(const FrequencySelectionConfig& config) : config_(config) {
  config_.validate("frequency selection");
}

namespace {

// Low-pass response at radius f for an edge at frequency `edge` (cycles/pixel; a number, or a
// tensor that broadcasts against f).
at::Tensor lowpass_response(const at::Tensor& f, const at::Tensor& edge, const FrequencySelectionConfig& config) {
  if (config.profile == "hard") return (f <= edge + 1e-12).to(at::kFloat);
  if (config.profile == "butterworth") return 1.0 / (1.0 + (f / edge).pow(2 * config.order));
  // gaussian: response 1/2 at the edge
  return at::exp(-std::log(2.0) * (f / edge).pow(2));
}

}  // namespace

at::Tensor FrequencySelection::mask(int64_t height, int64_t width, const at::TensorOptions& options,
                                    const at::Tensor& tau) const {
  const auto real = at::TensorOptions().dtype(at::kFloat);
  at::Tensor fy = at::fft_fftfreq(height, 1.0, real).unsqueeze(1);  // [H, 1]
  at::Tensor fx = at::fft_fftfreq(width, 1.0, real).unsqueeze(0);   // [1, W]
  at::Tensor f = config_.shape == "radial" ? at::sqrt(fy * fy + fx * fx) : at::maximum(fy.abs(), fx.abs());  // [H, W]
  at::Tensor low_edge = at::scalar_tensor(config_.cutoff * 0.5, real);
  const at::Tensor high_edge = at::scalar_tensor(config_.cutoff_high * 0.5, real);
  if (time_dependent()) {
    check(tau.defined() && tau.dim() == 1, "frequency selection: the cutoff depends on t (cutoff_end = ",
          config_.cutoff_end, "), so each sample's t is needed");
    const at::Tensor fraction = tau.to(at::kFloat).clamp(0.0, 1.0).view({-1, 1, 1, 1});             // [B, 1, 1, 1]
    low_edge = 0.5 * (config_.cutoff + (config_.cutoff_end - config_.cutoff) * fraction);            // r(t) / 2
    f = f.view({1, 1, height, width});                                                               // -> [B, 1, H, W]
  }
  at::Tensor m;
  if (config_.filter == "none") {
    m = at::ones_like(f);
  } else if (config_.filter == "lowpass") {
    m = lowpass_response(f, low_edge, config_);
  } else if (config_.filter == "highpass") {
    m = 1.0 - lowpass_response(f, low_edge, config_);
  } else {  // bandpass: passes low_edge < |f| <= high_edge
    m = lowpass_response(f, high_edge, config_) - lowpass_response(f, low_edge, config_);
    m = m.clamp_min(0.0);
  }
  return m.to(options);
}

at::Tensor FrequencySelection::filtered_energy(const at::Tensor& residual, const at::Tensor& tau) const {
  check(residual.dim() == 4, "frequency selection: expected a residual [B, C, H, W], got ", residual.sizes());
  if (!enabled()) return residual.pow(2).sum({1, 2, 3});
  at::Tensor spectrum = at::fft_fft2(residual.to(at::kFloat), c10::nullopt, {-2, -1}, "ortho");  // [B, C, H, W] complex
  at::Tensor m = mask(residual.size(2), residual.size(3), residual.options().dtype(at::kFloat), tau);  // [H, W] or [B, 1, H, W]
  return (at::real(spectrum).pow(2) + at::imag(spectrum).pow(2)).mul(m).sum({1, 2, 3});              // [B]
}

at::Tensor FrequencySelection::apply(const at::Tensor& x, const at::Tensor& tau) const {
  if (!enabled()) return x;
  at::Tensor spectrum = at::fft_fft2(x.to(at::kFloat), c10::nullopt, {-2, -1}, "ortho");
  at::Tensor m = mask(x.size(-2), x.size(-1), x.options().dtype(at::kFloat), tau);
  return at::real(at::fft_ifft2(spectrum * m, c10::nullopt, {-2, -1}, "ortho"));
}

at::Tensor FrequencySelection::preview(int64_t height, int64_t width) const {
  if (!time_dependent()) return mask_image(height, width);
  const at::Tensor gap = at::full({1, height, 2}, 0.5, at::kFloat);
  return at::cat({mask_image(height, width, 0.0), gap, mask_image(height, width, 1.0)}, 2);  // [1, H, 2W + 2]
}

std::string FrequencySelection::describe() const {
  std::string out = config_.filter + " " + config_.shape + " " + config_.profile;
  if (!enabled()) return out;
  if (!time_dependent()) return str(out, " cutoff ", config_.cutoff);
  return str(out, " cutoff ", config_.cutoff, " at t = 0 to ", config_.cutoff_end, " at t = T-1");
}

at::Tensor FrequencySelection::mask_image(int64_t height, int64_t width, double tau) const {
  at::Tensor m = mask(height, width, at::TensorOptions().dtype(at::kFloat), at::full({1}, tau, at::kFloat));
  return at::fft_fftshift(m.view({height, width}), {0, 1}).unsqueeze(0);
}

}  // namespace lethe::unlearn
