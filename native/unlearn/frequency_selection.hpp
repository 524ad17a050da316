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
  // > 0: the cutoff depends on the timestep, r(t) = cutoff + (cutoff_end - cutoff) t / (T - 1),
  // from `cutoff` at the cleanest timestep to `cutoff_end` at the noisiest; 0: constant.
  double cutoff_end = 0.0;

  template <typename Visitor>
  void visit(Visitor& v) {
    v("filter", filter);
    v("shape", shape);
    v("profile", profile);
    v("cutoff", cutoff);
    v("cutoff_high", cutoff_high);
    v("order", order);
    v("cutoff_end", cutoff_end);
  }
  void validate(const std::string& where) const;
};

class FrequencySelection {
 public:
  explicit FrequencySelection(const FrequencySelectionConfig& config);
  bool enabled() const { return config_.filter != "none"; }
  // Whether the cutoff depends on the timestep (cutoff_end > 0): then every call below needs
  // `tau` [B], each sample's t / (T - 1) in [0, 1].
  bool time_dependent() const { return enabled() && config_.cutoff_end > 0; }
  // The mask M (float, unshifted FFT layout, values in [0, 1]): [H, W], or [B, 1, H, W] per
  // sample when time-dependent.
  at::Tensor mask(int64_t height, int64_t width, const at::TensorOptions& options, const at::Tensor& tau = {}) const;
  // sum_{C, ky, kx} M |FFT_ortho(r)|^2 per sample: r [B, C, H, W] -> [B]. Differentiable.
  at::Tensor filtered_energy(const at::Tensor& residual, const at::Tensor& tau = {}) const;
  // The filtered signal real(IFFT(M FFT(x))) [B, C, H, W] (for checks and pictures).
  at::Tensor apply(const at::Tensor& x, const at::Tensor& tau = {}) const;
  // The mask as a picture: [1, H, W] with zero frequency at the centre (at tau when
  // time-dependent).
  at::Tensor mask_image(int64_t height, int64_t width, double tau = 0.0) const;
  // The picture nodes and run folders show: mask_image, or for a time-dependent cutoff the
  // masks at the cleanest and the noisiest timestep side by side, [1, H, 2W + 2].
  at::Tensor preview(int64_t height, int64_t width) const;
  // A line that says what the selection keeps ("lowpass radial hard cutoff 0.5", "... cutoff
  // 0.3 at t = 0 to 0.8 at t = T-1").
  std::string describe() const;
  const FrequencySelectionConfig& config() const { return config_; }

 private:
  FrequencySelectionConfig config_;
};

}  // namespace lethe::unlearn
