// Frequency selection for the forget term (docs/methods.md §3.2): the per-sample
// residual r = model_output - target ([B, C, H, W], pixels or latents) is taken to the
// 2-D FFT (orthonormal), multiplied by a mask M over (ky, kx) and its energy
// sum_{C, ky, kx} M |R|^2 is the filtered loss. With M = 1 this equals sum_d r^2 (Parseval),
// so filtered and unfiltered losses share a scale. Frequencies are fftfreq units
// (cycles/pixel, Nyquist = 0.5); cutoffs are given as a fraction of Nyquist.
#pragma once

#include <string>

#include <ATen/core/Tensor.h>

namespace lethe::unlearn {

struct FrequencySelectionConfig {
  std::string filter = "none";     // none | lowpass | highpass | bandpass
  std::string shape = "radial";    // radial (|f| = sqrt(fx^2 + fy^2)) | square (max(|fx|, |fy|))
  std::string profile = "hard";    // hard | butterworth | gaussian
  double cutoff = 0.5;             // fraction of Nyquist: the low-pass edge, or the high-pass edge
  double cutoff_high = 1.0;        // band-pass upper edge (fraction of Nyquist)
  int64_t order = 2;               // Butterworth order

  template <typename Visitor>
  void visit(Visitor& v) {
    v("filter", filter);
    v("shape", shape);
    v("profile", profile);
    v("cutoff", cutoff);
    v("cutoff_high", cutoff_high);
    v("order", order);
  }
  void validate(const std::string& where) const;
};

class FrequencySelection {
 public:
  explicit FrequencySelection(const FrequencySelectionConfig& config);
  bool enabled() const { return config_.filter != "none"; }
  // The mask M [H, W] (float, unshifted FFT layout, values in [0, 1]).
  at::Tensor mask(int64_t height, int64_t width, const at::TensorOptions& options) const;
  // sum_{C, ky, kx} M |FFT_ortho(r)|^2 per sample: r [B, C, H, W] -> [B]. Differentiable.
  at::Tensor filtered_energy(const at::Tensor& residual) const;
  // The filtered signal real(IFFT(M FFT(x))) [B, C, H, W] (for checks and pictures).
  at::Tensor apply(const at::Tensor& x) const;
  // The mask as a picture: [1, H, W] with zero frequency at the centre.
  at::Tensor mask_image(int64_t height, int64_t width) const;
  const FrequencySelectionConfig& config() const { return config_; }

 private:
  FrequencySelectionConfig config_;
};

}  // namespace lethe::unlearn
