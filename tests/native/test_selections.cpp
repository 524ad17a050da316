// Time and frequency selection: windows only ever draw inside [t_min, t_max), weightings
// average to one over the window, a low-pass mask leaves a band-limited signal unchanged,
// masked + complementary energy equals the total (Parseval), and the filtered energy with
// M = 1 equals sum_d r^2.
#include <cmath>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include "diffusion/schedule.hpp"
#include "diffusion/timestep_distribution.hpp"
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

TEST(TimestepDistribution, AutoFollowsTheScheduleAndUniformDrawsAreRandintsOwn) {
  using lethe::diffusion::TimestepDistribution;
  using lethe::diffusion::TimestepDistributionConfig;
  const lethe::diffusion::NoiseSchedule ddpm;
  const auto flow = lethe::diffusion::NoiseSchedule::from_flow_sigmas(at::arange(1, 1001, at::kFloat) / 1000.0);
  EXPECT_EQ(TimestepDistribution(TimestepDistributionConfig{}, ddpm).kind(), "uniform");
  EXPECT_EQ(TimestepDistribution(TimestepDistributionConfig{}, flow).kind(), "logit_normal");
  TimestepDistributionConfig uniform;
  uniform.kind = "uniform";
  EXPECT_EQ(TimestepDistribution(uniform, flow).kind(), "uniform");
  // Uniform draws are exactly the draws runs made before the distribution existed.
  at::Generator a = at::make_generator<at::CPUGeneratorImpl>(3), b = at::make_generator<at::CPUGeneratorImpl>(3);
  EXPECT_TRUE(at::equal(TimestepDistribution(uniform, ddpm).sample(64, 250, 750, a),
                        at::randint(250, 750, {64}, b, at::kLong)));
  TimestepDistributionConfig bad;
  bad.kind = "cosine";
  expect_error([&] { bad.validate("run.timestep_distribution"); },
               {"run.timestep_distribution.kind", "unknown 'cosine'", "auto, uniform, logit_normal"});
  bad = {};
  bad.logit_std = 0;
  expect_error([&] { bad.validate("d"); }, {"d.logit_std", "expected > 0", "got 0"});
}

TEST(TimestepDistribution, LogitNormalProbabilitiesAreTheCdfDifferencesAndDrawsFollowThem) {
  using lethe::diffusion::TimestepDistribution;
  const auto flow = lethe::diffusion::NoiseSchedule::from_flow_sigmas(at::arange(1, 1001, at::kFloat) / 1000.0);
  lethe::diffusion::TimestepDistributionConfig config;
  config.logit_mean = 0.5;
  config.logit_std = 0.8;
  const TimestepDistribution distribution(config, flow);
  // P(t) = Phi(z((t + 1) / T)) - Phi(z(t / T)), z(u) = (log(u / (1 - u)) - m) / s: here at t = 600.
  auto phi = [](double u) { return 0.5 * std::erfc(-((std::log(u / (1 - u)) - 0.5) / 0.8) / std::sqrt(2.0)); };
  const at::Tensor full = distribution.probabilities(0, 1000);
  EXPECT_NEAR(full.sum().item<double>(), 1.0, 1e-12);
  EXPECT_NEAR(full[600].item<double>(), phi(0.601) - phi(0.600), 1e-12);
  // A window renormalises; draws stay inside it and follow P (a chi-square-sized bound on 50 bins).
  const at::Tensor window = distribution.probabilities(700, 1000);
  EXPECT_EQ(window.narrow(0, 0, 700).abs().sum().item<double>(), 0.0);
  EXPECT_NEAR(window[800].item<double>(), full[800].item<double>() / full.narrow(0, 700, 300).sum().item<double>(), 1e-12);
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(5);
  const int64_t n = 200000;
  const at::Tensor t = distribution.sample(n, 700, 1000, g);
  EXPECT_GE(t.min().item<int64_t>(), 700);
  EXPECT_LE(t.max().item<int64_t>(), 999);
  const at::Tensor observed = at::bincount(t - 700, {}, 300).to(at::kDouble).view({50, 6}).sum(1);  // [50]
  const at::Tensor expected = window.narrow(0, 700, 300).view({50, 6}).sum(1) * static_cast<double>(n);
  const double chi2 = ((observed - expected).pow(2) / expected).sum().item<double>();
  EXPECT_LT(chi2, 100.0) << "49 degrees of freedom: the 1e-5 quantile is about 100";
}

TEST(TimestepSelection, WeightingsHaveMeanOneUnderTheSamplingDistribution) {
  const auto flow = lethe::diffusion::NoiseSchedule::from_flow_sigmas(at::arange(1, 1001, at::kFloat) / 1000.0);
  const lethe::diffusion::TimestepDistribution distribution(lethe::diffusion::TimestepDistributionConfig{}, flow);
  TimestepSelectionConfig config;
  config.t_min = 100;
  config.t_max = 900;
  config.weighting = "hann";
  TimestepSelection selection(config, flow, &distribution);
  const at::Tensor p = distribution.probabilities(100, 900);
  EXPECT_NEAR((selection.table().to(at::kDouble) * p).sum().item<double>(), 1.0, 1e-6);
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

// A window in noise levels: against a slow scan of ComfyUI's sigma written out from alphas_cumprod
// (SD's scaled-linear schedule) and against a flow table, where t is u = (t + 1) / T through SD3's
// time shift s = 3u / (1 + 2u).
TEST(TimestepSelection, SigmaWindowsResolveToTheTimestepsOfThoseNoiseLevels) {
  using lethe::diffusion::NoiseSchedule;
  using lethe::diffusion::ScheduleConfig;
  auto scan = [](const std::vector<double>& levels, double low, double high) {
    int64_t first = -1, last = -1;
    for (size_t t = 0; t < levels.size(); ++t)
      if (levels[t] >= low && levels[t] <= high) {
        if (first < 0) first = static_cast<int64_t>(t);
        last = static_cast<int64_t>(t);
      }
    return std::make_pair(first, last + 1);
  };
  const NoiseSchedule sd(ScheduleConfig::stable_diffusion());
  const at::Tensor abar = sd.alphas_cumprod().to(at::kDouble).contiguous();
  std::vector<double> sd_sigmas;
  for (int64_t t = 0; t < abar.size(0); ++t) {
    const double a = abar[t].item<double>();
    sd_sigmas.push_back(std::sqrt((1 - a) / a));
  }
  std::vector<double> shifted;
  for (int64_t t = 0; t < 1000; ++t) {
    const double u = (t + 1) / 1000.0;
    shifted.push_back(3 * u / (1 + 2 * u));
  }
  const NoiseSchedule flow = NoiseSchedule::from_flow_sigmas(at::tensor(shifted, at::kDouble));
  TimestepSelectionConfig config;
  config.weighting = "hann";
  for (const auto& [schedule, levels, low, high] :
       {std::make_tuple(&sd, &sd_sigmas, 1.0, 5.0), std::make_tuple(&sd, &sd_sigmas, 0.0, 0.5),
        std::make_tuple(&flow, &shifted, 0.5, 0.9), std::make_tuple(&flow, &shifted, 0.95, 2.0)}) {
    config.sigma_min = low;
    config.sigma_max = high;
    const auto [t_min, t_max] = scan(*levels, low, high);
    const TimestepSelection selection(config, *schedule);
    EXPECT_EQ(selection.config().t_min, t_min) << low << " " << high;
    EXPECT_EQ(selection.config().t_max, t_max) << low << " " << high;
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(2);
    const at::Tensor drawn = selection.sample(4000, g);
    EXPECT_GE(drawn.min().item<int64_t>(), t_min);
    EXPECT_LT(drawn.max().item<int64_t>(), t_max);
  }
  config.sigma_min = 20.0;
  config.sigma_max = 30.0;
  expect_error([&] { TimestepSelection(config, sd); },
               {"no timestep of this model has a noise level sigma in [20, 30]", "run from 0.029", "to 14.6"});
  config.sigma_min = 2.0;
  config.sigma_max = 1.0;
  expect_error([&] { TimestepSelection(config, sd); }, {"0 <= sigma_min < sigma_max", "[2, 1]"});
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

TEST(FrequencySelection, ATimeDependentCutoffShowsBothEndsAndNamesThem) {
  FrequencySelectionConfig config;
  config.filter = "lowpass";
  config.cutoff = 0.25;
  config.cutoff_end = 1.0;
  FrequencySelection moving(config);
  const at::Tensor picture = moving.preview(8, 8);  // [1, 8, 18]: t = 0 | gap | t = T-1
  EXPECT_EQ(picture.sizes(), at::IntArrayRef({1, 8, 18}));
  EXPECT_TRUE(at::equal(picture.slice(2, 0, 8), moving.mask_image(8, 8, 0.0)));
  EXPECT_TRUE(at::equal(picture.slice(2, 10, 18), moving.mask_image(8, 8, 1.0)));
  EXPECT_LT(picture.slice(2, 0, 8).sum().item<double>(), picture.slice(2, 10, 18).sum().item<double>());
  EXPECT_EQ(moving.describe(), "lowpass radial hard cutoff 0.25 at t = 0 to 1 at t = T-1");
  config.cutoff_end = 0.0;
  EXPECT_EQ(FrequencySelection(config).preview(8, 8).sizes(), at::IntArrayRef({1, 8, 8}));
  config.cutoff_end = -1.0;
  expect_error([&] { FrequencySelection{config}; }, {".cutoff_end: expected >= 0"});
}
