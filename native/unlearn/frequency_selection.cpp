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
}

FrequencySelection::FrequencySelection(const FrequencySelectionConfig& config) : config_(config) {
  config_.validate("frequency selection");
}

namespace {

// Low-pass response at radius f for an edge at frequency `edge` (cycles/pixel).
at::Tensor lowpass_response(const at::Tensor& f, double edge, const FrequencySelectionConfig& config) {
  if (config.profile == "hard") return (f <= edge + 1e-12).to(at::kFloat);
  if (config.profile == "butterworth") return 1.0 / (1.0 + (f / edge).pow(2 * config.order));
  // gaussian: response 1/2 at the edge
  return at::exp(-std::log(2.0) * (f / edge).pow(2));
}

}  // namespace

at::Tensor FrequencySelection::mask(int64_t height, int64_t width, const at::TensorOptions& options) const {
  const auto real = at::TensorOptions().dtype(at::kFloat);
  at::Tensor fy = at::fft_fftfreq(height, 1.0, real).unsqueeze(1);  // [H, 1]
  at::Tensor fx = at::fft_fftfreq(width, 1.0, real).unsqueeze(0);   // [1, W]
  at::Tensor f = config_.shape == "radial" ? at::sqrt(fy * fy + fx * fx) : at::maximum(fy.abs(), fx.abs());  // [H, W]
  const double low_edge = config_.cutoff * 0.5, high_edge = config_.cutoff_high * 0.5;
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

at::Tensor FrequencySelection::filtered_energy(const at::Tensor& residual) const {
  check(residual.dim() == 4, "frequency selection: expected a residual [B, C, H, W], got ", residual.sizes());
  if (!enabled()) return residual.pow(2).sum({1, 2, 3});
  at::Tensor spectrum = at::fft_fft2(residual.to(at::kFloat), c10::nullopt, {-2, -1}, "ortho");  // [B, C, H, W] complex
  at::Tensor m = mask(residual.size(2), residual.size(3), residual.options().dtype(at::kFloat));   // [H, W]
  return (at::real(spectrum).pow(2) + at::imag(spectrum).pow(2)).mul(m).sum({1, 2, 3});           // [B]
}

at::Tensor FrequencySelection::apply(const at::Tensor& x) const {
  if (!enabled()) return x;
  at::Tensor spectrum = at::fft_fft2(x.to(at::kFloat), c10::nullopt, {-2, -1}, "ortho");
  at::Tensor m = mask(x.size(-2), x.size(-1), x.options().dtype(at::kFloat));
  return at::real(at::fft_ifft2(spectrum * m, c10::nullopt, {-2, -1}, "ortho"));
}

at::Tensor FrequencySelection::mask_image(int64_t height, int64_t width) const {
  return at::fft_fftshift(mask(height, width, at::TensorOptions().dtype(at::kFloat)), {0, 1}).unsqueeze(0);
}

}  // namespace lethe::unlearn
