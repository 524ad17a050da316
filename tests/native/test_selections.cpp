// Time and frequency selection: windows only ever draw inside [t_min, t_max), weightings
// average to one over the window, a low-pass mask leaves a band-limited signal unchanged,
// masked + complementary energy equals the total (Parseval), and the filtered energy with
// M = 1 equals sum_d r^2.
#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "diffusion/schedule.hpp"
#include "test_helpers.hpp"
#include "unlearn/frequency_selection.hpp"
#include "unlearn/timestep_selection.hpp"

using namespace lethe::unlearn;
using lethe::testing::expect_error;

TEST(TimestepSelection, DrawsOnlyInsideTheWindow) {
  lethe::diffusion::NoiseSchedule schedule;
  TimestepSelectionConfig config;
  config.t_min = 250;
  config.t_max = 750;
  TimestepSelection selection(config, schedule);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(1);
  at::Tensor t = selection.sample(20000, g);
  EXPECT_GE(t.min().item<int64_t>(), 250);
  EXPECT_LT(t.max().item<int64_t>(), 750);
  EXPECT_EQ(t.min().item<int64_t>(), 250);  // both ends are reached with 20000 draws
  EXPECT_EQ(t.max().item<int64_t>(), 749);
  at::Tensor inside = selection.weight(at::tensor({249, 250, 749, 750}, at::kLong));
  EXPECT_EQ(inside[0].item<float>(), 0.0f);
  EXPECT_EQ(inside[1].item<float>(), 1.0f);
  EXPECT_EQ(inside[2].item<float>(), 1.0f);
  EXPECT_EQ(inside[3].item<float>(), 0.0f);
}

TEST(TimestepSelection, WeightingsAverageToOneOverTheWindowAndVanishOutside) {
  lethe::diffusion::NoiseSchedule schedule;
  for (const char* weighting : {"uniform", "snr", "min_snr", "hann"}) {
    TimestepSelectionConfig config;
    config.t_min = 100;
    config.t_max = 900;
    config.weighting = weighting;
    TimestepSelection selection(config, schedule);
    at::Tensor table = selection.table().to(at::kDouble);
    EXPECT_NEAR(table.narrow(0, 100, 800).mean().item<double>(), 1.0, 1e-6) << weighting;
    EXPECT_EQ(table.narrow(0, 0, 100).abs().sum().item<double>(), 0.0) << weighting;
    EXPECT_EQ(table.narrow(0, 900, 100).abs().sum().item<double>(), 0.0) << weighting;
  }
}

TEST(TimestepSelection, MinSnrMatchesItsClosedForm) {
  lethe::diffusion::NoiseSchedule schedule;
  TimestepSelectionConfig config;
  config.weighting = "min_snr";
  TimestepSelection selection(config, schedule);
  at::Tensor abar = schedule.alphas_cumprod().to(at::kDouble);
  at::Tensor snr = abar / (1 - abar);
  at::Tensor expected = at::clamp_max(snr, 5.0) / snr;
  expected = expected / expected.mean();
  EXPECT_TRUE(at::allclose(selection.table().to(at::kDouble), expected, 1e-5, 1e-6));
}

TEST(TimestepSelection, InvalidWindowsAreRejected) {
  lethe::diffusion::NoiseSchedule schedule;
  TimestepSelectionConfig config;
  config.t_min = 800;
  config.t_max = 200;
  expect_error([&] { TimestepSelection(config, schedule); }, {"t_min < t_max", "[800, 200)"});
  config.t_min = 0;
  config.t_max = 1200;
  expect_error([&] { TimestepSelection(config, schedule); }, {"t_max 1200 exceeds"});
}

namespace {

// Sum of plane waves with frequencies strictly inside a radius (cycles/pixel).
at::Tensor band_limited(int64_t size, double max_frequency) {
  at::Tensor y = at::arange(size, at::kDouble).view({size, 1});
  at::Tensor x = at::arange(size, at::kDouble).view({1, size});
  at::Tensor signal = at::zeros({size, size}, at::kDouble);
  const double fundamental = 1.0 / size;
  for (int ky = -3; ky <= 3; ++ky)
    for (int kx = -3; kx <= 3; ++kx) {
      const double f = std::sqrt(kx * kx + ky * ky) * fundamental;
      if (f >= max_frequency) continue;
      const double phase = 0.37 * kx + 0.11 * ky;
      signal += at::cos(2 * M_PI * fundamental * (kx * x + ky * y) + phase) / (1 + kx * kx + ky * ky);
    }
  return signal.to(at::kFloat).view({1, 1, size, size});
}

}  // namespace

TEST(FrequencySelection, LowPassLeavesABandLimitedSignalUnchanged) {
  FrequencySelectionConfig config;
  config.filter = "lowpass";
  config.cutoff = 0.5;  // edge at 0.25 cycles/pixel
  FrequencySelection selection(config);
  at::Tensor signal = band_limited(32, 0.2);
  EXPECT_TRUE(at::allclose(selection.apply(signal), signal, 1e-4, 1e-4));
  EXPECT_NEAR(selection.filtered_energy(signal).item<double>(), signal.pow(2).sum().item<double>(), 1e-2);
}

TEST(FrequencySelection, MaskedPlusComplementEnergyEqualsTheTotal) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
  at::Tensor residual = at::randn({3, 4, 16, 12}, g, at::kFloat);
  at::Tensor total = residual.pow(2).sum({1, 2, 3});
  for (const char* profile : {"hard", "butterworth", "gaussian"})
    for (const char* shape : {"radial", "square"}) {
      FrequencySelectionConfig low, high;
      low.filter = "lowpass";
      high.filter = "highpass";
      low.profile = high.profile = profile;
      low.shape = high.shape = shape;
      low.cutoff = high.cutoff = 0.4;
      at::Tensor sum = FrequencySelection(low).filtered_energy(residual) + FrequencySelection(high).filtered_energy(residual);
      EXPECT_TRUE(at::allclose(sum, total, 1e-4, 1e-3)) << profile << " " << shape;
    }
}

TEST(FrequencySelection, NoFilterIsTheSumOfSquaresAndBandPassSitsBetween) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
  at::Tensor residual = at::randn({2, 1, 8, 8}, g, at::kFloat);
  FrequencySelection none({});
  EXPECT_TRUE(at::allclose(none.filtered_energy(residual), residual.pow(2).sum({1, 2, 3})));
  FrequencySelectionConfig band;
  band.filter = "bandpass";
  band.cutoff = 0.25;
  band.cutoff_high = 0.75;
  at::Tensor m = FrequencySelection(band).mask(8, 8, at::kFloat);
  EXPECT_EQ(m[0][0].item<float>(), 0.0f);   // DC is below the band
  EXPECT_EQ(m[0][2].item<float>(), 1.0f);   // 0.25 cycles/pixel is inside (0.125, 0.375]
  EXPECT_EQ(m[4][4].item<float>(), 0.0f);   // the Nyquist corner is above it
}

TEST(FrequencySelection, RadialHardMaskMatchesTheFftfreqDefinition) {
  FrequencySelectionConfig config;
  config.filter = "lowpass";
  config.cutoff = 0.5;
  at::Tensor m = FrequencySelection(config).mask(6, 6, at::kFloat);
  const double f[6] = {0, 1.0 / 6, 2.0 / 6, -0.5, -2.0 / 6, -1.0 / 6};  // numpy.fft.fftfreq(6)
  for (int i = 0; i < 6; ++i)
    for (int j = 0; j < 6; ++j)
      EXPECT_EQ(m[i][j].item<float>(), std::sqrt(f[i] * f[i] + f[j] * f[j]) <= 0.25 ? 1.0f : 0.0f) << i << "," << j;
}

TEST(FrequencySelection, GradientsFlowThroughTheFft) {
  FrequencySelectionConfig config;
  config.filter = "lowpass";
  config.profile = "butterworth";
  at::Tensor r = at::randn({1, 1, 8, 8}).requires_grad_(true);
  FrequencySelection(config).filtered_energy(r).sum().backward();
  // d/dr sum M |FFT r|^2 = 2 * real(IFFT(M FFT r)) for a symmetric real mask.
  at::Tensor expected = 2 * FrequencySelection(config).apply(r.detach());
  EXPECT_TRUE(at::allclose(r.grad(), expected, 1e-4, 1e-5));
}

TEST(FrequencySelection, BadConfigsNameTheField) {
  FrequencySelectionConfig config;
  config.filter = "lowpas";
  expect_error([&] { FrequencySelection{config}; }, {".filter", "lowpas", "lowpass"});
  config.filter = "bandpass";
  config.cutoff = 0.5;
  config.cutoff_high = 0.4;
  expect_error([&] { FrequencySelection{config}; }, {".cutoff_high"});
}
