#include "models/group_norm_kernel.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <ATen/core/grad_mode.h>

#include "core/error.hpp"

namespace lethe::models {

namespace {

#define LETHE_INLINE inline __attribute__((always_inline))

// bf16 <-> fp32 as bit operations the compiler vectorises: a bf16 is the top half of an fp32.
LETHE_INLINE float load(float value) { return value; }
LETHE_INLINE float load(uint16_t value) { return std::bit_cast<float>(static_cast<uint32_t>(value) << 16); }
LETHE_INLINE void store(float value, float& out) { out = value; }
// Round to nearest even; a NaN stays a (quiet) NaN.
LETHE_INLINE void store(float value, uint16_t& out) {
  const uint32_t bits = std::bit_cast<uint32_t>(value);
  const uint32_t rounded = (bits + 0x7FFFu + ((bits >> 16) & 1u)) >> 16;
  out = static_cast<uint16_t>((bits & 0x7FFFFFFFu) > 0x7F800000u ? ((bits >> 16) | 0x40u) : rounded);
}

// e^x in fp32 for the SiLU: x = k ln 2 + r with |r| <= ln2 / 2, e^r by its Taylor series to r^7
// (relative error below 1e-8 there, under fp32's rounding), 2^k by building the exponent.
// x is clamped to [-87, 88], where 2^k stays a normal number; the SiLU only needs e^x of
// that range (beyond it y / (1 + e^-y) is y or 0 to far below bf16's and fp32's resolution).
LETHE_INLINE float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float k = std::floor(x * 1.44269504088896341f + 0.5f);
  const float r = (x - k * 0.693145751953125f) - k * 1.42860682030941723e-6f;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  const float two_k = std::bit_cast<float>(static_cast<uint32_t>(static_cast<int32_t>(k) + 127) << 23);
  return p * two_k;
}

struct Affine {
  const float* weight;  // [C]
  const float* bias;    // [C]
  int64_t groups;
  float eps;
  bool silu;
};

// Rows of C channels are processed `rows_per_tile` at a time as one flat run of
// tile = rows_per_tile * C values, with the per-channel arrays repeated to that length, so every
// inner loop is long (>= kTileValues) whatever C is, instead of one short loop per pixel.
constexpr int64_t kTileValues = 256;

int64_t rows_per_tile(int64_t channels) { return std::max<int64_t>(1, kTileValues / channels); }

// One sample: x, y [pixels, C] (channels contiguous). `work` holds 5 tiles of floats.
// Statistics in one pass of shifted sums: with K_c the channel's first value, s1 = sum (x - K_c)
// and s2 = sum (x - K_c)^2 give the channel's mean K_c + s1 / n and centred sum of squares
// s2 - s1^2 / n without the cancellation of sum x^2 - n mean^2; channels combine into their
// group in fp64 (M2_g = sum_c M2_c + n sum_c (mean_c - mean_g)^2).
template <typename T>
LETHE_INLINE void normalise_sample(const T* __restrict x, const float* __restrict added, T* __restrict y,
                                   int64_t pixels, int64_t channels, const Affine& affine, float* __restrict work) {
  const int64_t rows = rows_per_tile(channels), tile = rows * channels;
  float* __restrict pivot = work;             // [tile] K_c, repeated per row
  float* __restrict s1 = work + tile;         // [tile]
  float* __restrict s2 = work + 2 * tile;     // [tile]
  float* __restrict scale = work + 3 * tile;  // [tile]
  float* __restrict shift = work + 4 * tile;  // [tile]
  const int64_t per_group = channels / affine.groups;
  const double n = static_cast<double>(pixels);

  for (int64_t c = 0; c < channels; ++c) pivot[c] = load(x[c]);
  for (int64_t r = 1; r < rows; ++r) std::copy_n(pivot, channels, pivot + r * channels);
  std::fill_n(s1, tile, 0.0f);
  std::fill_n(s2, tile, 0.0f);
  for (int64_t p = 0; p < pixels; p += rows) {
    const T* __restrict run = x + p * channels;
    const int64_t length = std::min(rows, pixels - p) * channels;
    for (int64_t j = 0; j < length; ++j) {
      const float d = load(run[j]) - pivot[j];
      s1[j] += d;
      s2[j] += d * d;
    }
  }
  for (int64_t r = 1; r < rows; ++r) {  // fold the tile's rows into row 0
    for (int64_t c = 0; c < channels; ++c) {
      s1[c] += s1[r * channels + c];
      s2[c] += s2[r * channels + c];
    }
  }
  for (int64_t g = 0; g < affine.groups; ++g) {
    const int64_t first = g * per_group, last = first + per_group;
    double mean = 0.0;
    for (int64_t c = first; c < last; ++c) mean += pivot[c] + s1[c] / n + (added ? added[c] : 0.0f);
    mean /= static_cast<double>(per_group);
    double m2 = 0.0;
    for (int64_t c = first; c < last; ++c) {
      const double channel_mean = pivot[c] + s1[c] / n + (added ? added[c] : 0.0f);
      m2 += std::max(0.0, static_cast<double>(s2[c]) - static_cast<double>(s1[c]) * s1[c] / n) +
            n * (channel_mean - mean) * (channel_mean - mean);
    }
    const double rstd = 1.0 / std::sqrt(m2 / (n * static_cast<double>(per_group)) + static_cast<double>(affine.eps));
    for (int64_t c = first; c < last; ++c) {
      scale[c] = static_cast<float>(rstd * affine.weight[c]);
      // (x + a - mean) * rstd * w + b = x * scale + (b + (a - mean) * rstd * w)
      shift[c] = static_cast<float>(affine.bias[c] + ((added ? added[c] : 0.0f) - mean) * rstd * affine.weight[c]);
    }
  }
  for (int64_t r = 1; r < rows; ++r) {
    std::copy_n(scale, channels, scale + r * channels);
    std::copy_n(shift, channels, shift + r * channels);
  }
  for (int64_t p = 0; p < pixels; p += rows) {
    const T* __restrict run = x + p * channels;
    T* __restrict out = y + p * channels;
    const int64_t length = std::min(rows, pixels - p) * channels;
    if (affine.silu) {
      for (int64_t j = 0; j < length; ++j) {
        const float v = load(run[j]) * scale[j] + shift[j];
        store(v / (1.0f + exp_approx(-v)), out[j]);
      }
    } else {
      for (int64_t j = 0; j < length; ++j) store(load(run[j]) * scale[j] + shift[j], out[j]);
    }
  }
}

// The two element types, each compiled for AVX-512, AVX2 + FMA and baseline x86-64 and picked
// once at load time by the CPU's features.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define LETHE_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define LETHE_CPU_CLONES
#endif

LETHE_CPU_CLONES void normalise_sample_fp32(const float* x, const float* added, float* y, int64_t pixels,
                                             int64_t channels, const Affine& affine, float* work) {
  normalise_sample(x, added, y, pixels, channels, affine, work);
}

LETHE_CPU_CLONES void normalise_sample_bf16(const uint16_t* x, const float* added, uint16_t* y, int64_t pixels,
                                             int64_t channels, const Affine& affine, float* work) {
  normalise_sample(x, added, y, pixels, channels, affine, work);
}

}  // namespace

bool group_norm_channels_last_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                      const at::Tensor& added) {
  if (!x.defined() || !x.is_cpu() || x.dim() != 4) return false;
  if (x.scalar_type() != at::kFloat && x.scalar_type() != at::kBFloat16) return false;
  if (!x.is_contiguous(at::MemoryFormat::ChannelsLast) || x.is_contiguous()) return false;
  if (!weight.defined() || !bias.defined() || weight.dim() != 1 || bias.dim() != 1) return false;
  if (weight.size(0) != x.size(1) || bias.size(0) != x.size(1)) return false;
  const bool wants_grad =
      x.requires_grad() || weight.requires_grad() || bias.requires_grad() || (added.defined() && added.requires_grad());
  return !(at::GradMode::is_enabled() && wants_grad);
}

at::Tensor group_norm_channels_last(const at::Tensor& x, int64_t groups, const at::Tensor& weight,
                                    const at::Tensor& bias, double eps, bool silu, const at::Tensor& added) {
  check(group_norm_channels_last_applies(x, weight, bias, added),
        "group_norm_channels_last: expected a channels-last fp32/bf16 CPU tensor [N, C, H, W] without gradients "
        "and weight, bias [C]; got x ", x.sizes(), " ", x.scalar_type(), ", weight ", weight.sizes(), ", bias ",
        bias.sizes());
  RECORD_FUNCTION("lethe::group_norm_channels_last", std::vector<c10::IValue>());  // named in op profiles
  const int64_t batch = x.size(0), channels = x.size(1), pixels = x.size(2) * x.size(3);
  check(groups >= 1 && channels % groups == 0, "group_norm_channels_last: ", channels,
        " channels are not divisible into ", groups, " groups");
  check(!added.defined() || added.numel() == batch * channels, "group_norm_channels_last: the added term must be [",
        batch, ", ", channels, "] (or [", batch, ", ", channels, ", 1, 1]), got ", added.sizes());
  at::Tensor w = weight.to(at::kFloat).contiguous(), b = bias.to(at::kFloat).contiguous();  // [C]
  at::Tensor a = added.defined() ? added.to(at::kFloat).reshape({batch, channels}).contiguous() : at::Tensor();  // [N, C]
  at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);                          // [N, C, H, W]
  const Affine affine{w.const_data_ptr<float>(), b.const_data_ptr<float>(), groups, static_cast<float>(eps), silu};
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  const int64_t sample_elements = pixels * channels;
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> work(static_cast<size_t>(5 * rows_per_tile(channels) * channels));
    for (int64_t n = begin; n < end; ++n) {
      const int64_t offset = n * sample_elements;
      const float* shift = a.defined() ? a.const_data_ptr<float>() + n * channels : nullptr;
      if (bf16) {
        normalise_sample_bf16(reinterpret_cast<const uint16_t*>(x.const_data_ptr<at::BFloat16>()) + offset, shift,
                              reinterpret_cast<uint16_t*>(y.mutable_data_ptr<at::BFloat16>()) + offset, pixels,
                              channels, affine, work.data());
      } else {
        normalise_sample_fp32(x.const_data_ptr<float>() + offset, shift, y.mutable_data_ptr<float>() + offset, pixels,
                              channels, affine, work.data());
      }
    }
  });
  return y;
}

}  // namespace lethe::models
