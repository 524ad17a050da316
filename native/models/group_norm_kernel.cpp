#include "models/group_norm_kernel.hpp"

#include <algorithm>
#include <type_traits>
#include <cmath>
#include <cstdint>
#include <vector>

#include <ATen/Parallel.h>
#include <ATen/record_function.h>
#include <ATen/core/grad_mode.h>
#include <torch/autograd.h>

#include "core/error.hpp"
#include "models/cpu_kernel_math.hpp"

namespace lethe::models {

namespace {

using kernel_math::exp_approx;
using kernel_math::load;
using kernel_math::store;
// exp_approx clamps its argument to [-87, 88]; beyond that range the SiLU y / (1 + e^-y) is y or 0
// to far below bf16's and fp32's resolution.

// dy * silu'(v), silu'(v) = s (1 + v (1 - s)) with s = sigmoid(v).
LETHE_INLINE float silu_backward(float v, float dy) {
  const float s = 1.0f / (1.0f + exp_approx(-v));
  return dy * s * (1.0f + v * (1.0f - s));
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

// Tiles of floats the forward and the backward of one sample work in.
constexpr int64_t kForwardTiles = 7, kBackwardTiles = 9;

// One sample: x, y [pixels, C] (channels contiguous). `work` holds kForwardTiles tiles of floats.
// Statistics in one pass of shifted sums: with K_c the channel's first value, s1 = sum (x - K_c)
// and s2 = sum (x - K_c)^2 give the channel's mean K_c + s1 / n and centred sum of squares
// s2 - s1^2 / n without the cancellation of sum x^2 - n mean^2; channels combine into their
// group in fp64 (M2_g = sum_c M2_c + n sum_c (mean_c - mean_g)^2).
template <typename T>
LETHE_INLINE void normalise_sample(const T* __restrict x, const float* __restrict added, T* __restrict y,
                                   int64_t pixels, int64_t channels, const Affine& affine, float* __restrict work,
                                   float* __restrict mean_out, float* __restrict rstd_out) {
  const int64_t rows = rows_per_tile(channels), tile = rows * channels;
  float* __restrict pivot = work;             // [tile] K_c, repeated per row
  float* __restrict s1 = work + tile;         // [tile]
  float* __restrict s2 = work + 2 * tile;     // [tile]
  float* __restrict scale = work + 3 * tile;  // [tile]
  float* __restrict shift = work + 4 * tile;  // [tile]
  float* __restrict v = work + 5 * tile;      // [tile] the affine map's values (with the SiLU)
  float* __restrict e = work + 6 * tile;      // [tile] e^-v
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
    if (mean_out) {  // for the backward: the statistics this forward normalised with
      mean_out[g] = static_cast<float>(mean);
      rstd_out[g] = static_cast<float>(rstd);
    }
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
    if (affine.silu) {  // three loops over the run: each vectorises fully (one loop of all three did not)
      for (int64_t j = 0; j < length; ++j) v[j] = load(run[j]) * scale[j] + shift[j];
      for (int64_t j = 0; j < length; ++j) e[j] = exp_approx(-v[j]);
      for (int64_t j = 0; j < length; ++j) store(v[j] / (1.0f + e[j]), out[j]);
    } else {
      for (int64_t j = 0; j < length; ++j) store(load(run[j]) * scale[j] + shift[j], out[j]);
    }
  }
}

// The two element types, each compiled for AVX-512, AVX2 + FMA and baseline x86-64 (LETHE_CPU_CLONES).

LETHE_CPU_CLONES void normalise_sample_fp32(const float* x, const float* added, float* y, int64_t pixels,
                                             int64_t channels, const Affine& affine, float* work, float* mean,
                                             float* rstd) {
  normalise_sample(x, added, y, pixels, channels, affine, work, mean, rstd);
}

LETHE_CPU_CLONES void normalise_sample_bf16(const uint16_t* x, const float* added, uint16_t* y, int64_t pixels,
                                             int64_t channels, const Affine& affine, float* work, float* mean,
                                             float* rstd) {
  normalise_sample(x, added, y, pixels, channels, affine, work, mean, rstd);
}

// The backward of one sample. With u = x + added[c], xhat = (u - mean_g) * rstd_g,
// v = xhat * w[c] + b[c], y = silu(v) (or v) and dv = dy * silu'(v) (or dy):
//   db[c] = sum_p dv, dw[c] = sum_p dv * xhat,
//   dx = rstd_g * (dv * w[c] - k1_g / M - xhat * k2_g / M), k1_g = sum_{c in g} w[c] db[c],
//   k2_g = sum_{c in g} w[c] dw[c], M = pixels * channels per group (at::group_norm's backward),
//   dadded[c] = sum_p dx.
// Two passes over x and dy, recomputing v from the saved statistics (nothing of the forward but x
// and the statistics is kept). With the SiLU the first pass keeps dv in `dv_kept` [pixels * C],
// so the second reads it back instead of evaluating the SiLU's derivative again (the same values:
// computed once). Per-channel sums of this sample go to dw, db, dadded [C]. `work` holds kBackwardTiles tiles
// of floats.
template <typename T>
LETHE_INLINE void backward_sample(const T* __restrict x, const T* __restrict dy, const float* __restrict added,
                                  const float* __restrict mean, const float* __restrict rstd, T* __restrict dx,
                                  float* __restrict dw, float* __restrict db, float* __restrict dadded, int64_t pixels,
                                  int64_t channels, const Affine& affine, float* __restrict work,
                                  float* __restrict dv_kept) {
  const int64_t rows = rows_per_tile(channels), tile = rows * channels, per_group = channels / affine.groups;
  float* __restrict x_scale = work;             // xhat = x * x_scale + x_shift
  float* __restrict x_shift = work + tile;
  float* __restrict weight = work + 2 * tile;   // w[c]
  float* __restrict bias = work + 3 * tile;     // b[c]
  float* __restrict s1 = work + 4 * tile;       // sum dv
  float* __restrict s2 = work + 5 * tile;       // sum dv * xhat
  float* __restrict dv_scale = work + 6 * tile; // dx = dv * dv_scale + xhat * xhat_scale + offset
  float* __restrict xhat_scale = work + 7 * tile;
  float* __restrict offset = work + 8 * tile;
  for (int64_t c = 0; c < channels; ++c) {
    const int64_t g = c / per_group;
    x_scale[c] = rstd[g];
    x_shift[c] = ((added ? added[c] : 0.0f) - mean[g]) * rstd[g];
    weight[c] = affine.weight[c];
    bias[c] = affine.bias[c];
  }
  for (int64_t r = 1; r < rows; ++r)
    for (float* array : {x_scale, x_shift, weight, bias}) std::copy_n(array, channels, array + r * channels);
  std::fill_n(s1, tile, 0.0f);
  std::fill_n(s2, tile, 0.0f);
  for (int64_t p = 0; p < pixels; p += rows) {
    const T* __restrict xs = x + p * channels;
    const T* __restrict gs = dy + p * channels;
    const int64_t length = std::min(rows, pixels - p) * channels;
    if (affine.silu) {
      float* __restrict kept = dv_kept + p * channels;
      for (int64_t j = 0; j < length; ++j) {
        const float xhat = load(xs[j]) * x_scale[j] + x_shift[j];
        const float dv = silu_backward(xhat * weight[j] + bias[j], load(gs[j]));
        kept[j] = dv;
        s1[j] += dv;
        s2[j] += dv * xhat;
      }
    } else {
      for (int64_t j = 0; j < length; ++j) {
        const float xhat = load(xs[j]) * x_scale[j] + x_shift[j];
        const float dv = load(gs[j]);
        s1[j] += dv;
        s2[j] += dv * xhat;
      }
    }
  }
  for (int64_t r = 1; r < rows; ++r)
    for (int64_t c = 0; c < channels; ++c) {
      s1[c] += s1[r * channels + c];
      s2[c] += s2[r * channels + c];
    }
  const double count = static_cast<double>(pixels * per_group);
  for (int64_t g = 0; g < affine.groups; ++g) {
    double k1 = 0.0, k2 = 0.0;
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      k1 += static_cast<double>(affine.weight[c]) * s1[c];
      k2 += static_cast<double>(affine.weight[c]) * s2[c];
    }
    for (int64_t c = g * per_group; c < (g + 1) * per_group; ++c) {
      dv_scale[c] = rstd[g] * affine.weight[c];
      xhat_scale[c] = static_cast<float>(-rstd[g] * k2 / count);
      offset[c] = static_cast<float>(-rstd[g] * k1 / count);
    }
  }
  for (int64_t c = 0; c < channels; ++c) {
    db[c] = s1[c];
    dw[c] = s2[c];
  }
  for (int64_t r = 1; r < rows; ++r)
    for (float* array : {dv_scale, xhat_scale, offset}) std::copy_n(array, channels, array + r * channels);
  float* __restrict s3 = s1;  // sum dx, reusing the first sums' tile
  std::fill_n(s3, tile, 0.0f);
  for (int64_t p = 0; p < pixels; p += rows) {
    const T* __restrict xs = x + p * channels;
    const T* __restrict gs = dy + p * channels;
    T* __restrict out = dx + p * channels;
    const int64_t length = std::min(rows, pixels - p) * channels;
    if (affine.silu) {
      const float* __restrict kept = dv_kept + p * channels;
      for (int64_t j = 0; j < length; ++j) {
        const float xhat = load(xs[j]) * x_scale[j] + x_shift[j];
        const float d = kept[j] * dv_scale[j] + xhat * xhat_scale[j] + offset[j];
        s3[j] += d;
        store(d, out[j]);
      }
    } else {
      for (int64_t j = 0; j < length; ++j) {
        const float xhat = load(xs[j]) * x_scale[j] + x_shift[j];
        const float d = load(gs[j]) * dv_scale[j] + xhat * xhat_scale[j] + offset[j];
        s3[j] += d;
        store(d, out[j]);
      }
    }
  }
  if (!dadded) return;
  for (int64_t c = 0; c < channels; ++c) {
    float sum = s3[c];
    for (int64_t r = 1; r < rows; ++r) sum += s3[r * channels + c];
    dadded[c] = sum;
  }
}

LETHE_CPU_CLONES void backward_sample_fp32(const float* x, const float* dy, const float* added, const float* mean,
                                            const float* rstd, float* dx, float* dw, float* db, float* dadded,
                                            int64_t pixels, int64_t channels, const Affine& affine, float* work,
                                            float* dv_kept) {
  backward_sample(x, dy, added, mean, rstd, dx, dw, db, dadded, pixels, channels, affine, work, dv_kept);
}

LETHE_CPU_CLONES void backward_sample_bf16(const uint16_t* x, const uint16_t* dy, const float* added, const float* mean,
                                            const float* rstd, uint16_t* dx, float* dw, float* db, float* dadded,
                                            int64_t pixels, int64_t channels, const Affine& affine, float* work,
                                            float* dv_kept) {
  backward_sample(x, dy, added, mean, rstd, dx, dw, db, dadded, pixels, channels, affine, work, dv_kept);
}

// Raw pointers of a bf16 or fp32 tensor, as the element type the kernels take.
template <typename T>
const T* elements(const at::Tensor& t) {
  if constexpr (std::is_same_v<T, uint16_t>) return reinterpret_cast<const uint16_t*>(t.const_data_ptr<at::BFloat16>());
  else return t.const_data_ptr<float>();
}
template <typename T>
T* mutable_elements(at::Tensor& t) {
  if constexpr (std::is_same_v<T, uint16_t>) return reinterpret_cast<uint16_t*>(t.mutable_data_ptr<at::BFloat16>());
  else return t.mutable_data_ptr<float>();
}

// x a 4-d channels-last (and not also NCHW) fp32/bf16 CPU tensor, weight and bias [C].
bool layout_fits(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  return x.defined() && x.is_cpu() && x.dim() == 4 && (x.scalar_type() == at::kFloat || x.scalar_type() == at::kBFloat16) &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous() && weight.defined() && bias.defined() &&
         weight.dim() == 1 && bias.dim() == 1 && weight.size(0) == x.size(1) && bias.size(0) == x.size(1);
}

bool wants_gradient(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& added) {
  return at::GradMode::is_enabled() && (x.requires_grad() || weight.requires_grad() || bias.requires_grad() ||
                                        (added.defined() && added.requires_grad()));
}

void check_inputs(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                  const at::Tensor& added) {
  check(layout_fits(x, weight, bias), "group_norm_channels_last: expected a channels-last fp32/bf16 CPU tensor "
        "[N, C, H, W] and weight, bias [C]; got x ", x.sizes(), " ", x.scalar_type(), ", weight ", weight.sizes(),
        ", bias ", bias.sizes());
  check(groups >= 1 && x.size(1) % groups == 0, "group_norm_channels_last: ", x.size(1),
        " channels are not divisible into ", groups, " groups");
  check(!added.defined() || added.numel() == x.size(0) * x.size(1), "group_norm_channels_last: the added term must be [",
        x.size(0), ", ", x.size(1), "] (or [", x.size(0), ", ", x.size(1), ", 1, 1]), got ", added.sizes());
}

// weight, bias [C] and the added term [N, C] (undefined: none) as contiguous fp32, what the
// per-sample kernels read.
struct FloatInputs {
  at::Tensor weight, bias, added;
};
FloatInputs float_inputs(const at::Tensor& weight, const at::Tensor& bias, const at::Tensor& added, int64_t batch,
                         int64_t channels) {
  return {weight.to(at::kFloat).contiguous(), bias.to(at::kFloat).contiguous(),
          added.defined() ? added.to(at::kFloat).reshape({batch, channels}).contiguous() : at::Tensor()};
}

// The forward; with `mean`, `rstd` ([N, G] fp32) defined, the statistics are written there.
at::Tensor forward_kernel(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                          double eps, bool silu, const at::Tensor& added, at::Tensor mean = {}, at::Tensor rstd = {}) {
  RECORD_FUNCTION("lethe::group_norm_channels_last", std::vector<c10::IValue>());  // named in op profiles
  const int64_t batch = x.size(0), channels = x.size(1), pixels = x.size(2) * x.size(3);
  const auto [w, b, a] = float_inputs(weight, bias, added, batch, channels);  // [C], [C], [N, C]
  at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);                          // [N, C, H, W]
  const Affine affine{w.const_data_ptr<float>(), b.const_data_ptr<float>(), groups, static_cast<float>(eps), silu};
  const bool bf16 = x.scalar_type() == at::kBFloat16;
  const int64_t sample_elements = pixels * channels;
  at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> work(static_cast<size_t>(kForwardTiles * rows_per_tile(channels) * channels));
    for (int64_t n = begin; n < end; ++n) {
      const int64_t offset = n * sample_elements;
      const float* shift = a.defined() ? a.const_data_ptr<float>() + n * channels : nullptr;
      float* m = mean.defined() ? mean.mutable_data_ptr<float>() + n * groups : nullptr;
      float* r = rstd.defined() ? rstd.mutable_data_ptr<float>() + n * groups : nullptr;
      if (bf16)
        normalise_sample_bf16(elements<uint16_t>(x) + offset, shift, mutable_elements<uint16_t>(y) + offset, pixels,
                              channels, affine, work.data(), m, r);
      else
        normalise_sample_fp32(elements<float>(x) + offset, shift, mutable_elements<float>(y) + offset, pixels,
                              channels, affine, work.data(), m, r);
    }
  });
  return y;
}

// The autograd node: x, weight, bias and the added term get their gradients from
// backward_sample; per-sample channel sums are added over the batch in sample order, so the
// result does not depend on how the samples were split over threads.
class GroupNormChannelsLastFunction : public torch::autograd::Function<GroupNormChannelsLastFunction> {
 public:
  // `added_or_empty`: the added term, or an empty tensor for none.
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x, const at::Tensor& weight,
                            const at::Tensor& bias, const at::Tensor& added_or_empty, int64_t groups, double eps,
                            bool silu) {
    const at::Tensor added = added_or_empty.numel() > 0 ? added_or_empty : at::Tensor();
    at::Tensor mean = at::empty({x.size(0), groups}, x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous));
    at::Tensor rstd = at::empty_like(mean);
    at::Tensor y = forward_kernel(x, groups, weight, bias, eps, silu, added, mean, rstd);
    ctx->save_for_backward({x, weight, bias, added_or_empty, mean, rstd});
    ctx->saved_data["groups"] = groups;
    ctx->saved_data["silu"] = silu;
    return y;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    RECORD_FUNCTION("lethe::group_norm_channels_last_backward", std::vector<c10::IValue>());
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &x = saved[0], &weight = saved[1], &bias = saved[2], &mean = saved[4], &rstd = saved[5];
    const at::Tensor added = saved[3].numel() > 0 ? saved[3] : at::Tensor();
    const int64_t groups = ctx->saved_data["groups"].toInt();
    const int64_t batch = x.size(0), channels = x.size(1), pixels = x.size(2) * x.size(3);
    const at::Tensor dy = grads[0].to(x.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);  // [N, C, H, W]
    const auto [w, b, a] = float_inputs(weight, bias, added, batch, channels);  // [C], [C], [N, C]
    at::Tensor dx = at::empty_like(x, at::MemoryFormat::ChannelsLast);
    const at::TensorOptions floats = x.options().dtype(at::kFloat).memory_format(at::MemoryFormat::Contiguous);
    at::Tensor dw_each = at::empty({batch, channels}, floats), db_each = at::empty({batch, channels}, floats);
    at::Tensor da = added.defined() ? at::empty({batch, channels}, floats) : at::Tensor();  // [N, C]
    const Affine affine{w.const_data_ptr<float>(), b.const_data_ptr<float>(), groups, 0.0f,
                        ctx->saved_data["silu"].toBool()};
    const bool bf16 = x.scalar_type() == at::kBFloat16;
    const int64_t sample_elements = pixels * channels;
    at::parallel_for(0, batch, 1, [&](int64_t begin, int64_t end) {
      const int64_t tiles = kBackwardTiles * rows_per_tile(channels) * channels;  // then dv of one sample with the SiLU
      std::vector<float> work(static_cast<size_t>(tiles + (affine.silu ? sample_elements : 0)));
      for (int64_t n = begin; n < end; ++n) {
        const int64_t offset = n * sample_elements;
        const float* shift = a.defined() ? a.const_data_ptr<float>() + n * channels : nullptr;
        float* dadded = da.defined() ? da.mutable_data_ptr<float>() + n * channels : nullptr;
        const float* m = mean.const_data_ptr<float>() + n * groups;
        const float* r = rstd.const_data_ptr<float>() + n * groups;
        float* dw = dw_each.mutable_data_ptr<float>() + n * channels;
        float* db = db_each.mutable_data_ptr<float>() + n * channels;
        if (bf16)
          backward_sample_bf16(elements<uint16_t>(x) + offset, elements<uint16_t>(dy) + offset, shift, m, r,
                               mutable_elements<uint16_t>(dx) + offset, dw, db, dadded, pixels, channels, affine,
                               work.data(), work.data() + tiles);
        else
          backward_sample_fp32(elements<float>(x) + offset, elements<float>(dy) + offset, shift, m, r,
                               mutable_elements<float>(dx) + offset, dw, db, dadded, pixels, channels, affine,
                               work.data(), work.data() + tiles);
      }
    });
    // Sums over the batch in sample order (fp64), whatever the threads' split.
    auto batch_sum = [&](const at::Tensor& each) {
      std::vector<double> total(static_cast<size_t>(channels), 0.0);
      const float* values = each.const_data_ptr<float>();
      for (int64_t n = 0; n < batch; ++n)
        for (int64_t c = 0; c < channels; ++c) total[c] += values[n * channels + c];
      at::Tensor out = at::empty({channels}, floats);
      for (int64_t c = 0; c < channels; ++c) out.mutable_data_ptr<float>()[c] = static_cast<float>(total[c]);
      return out;
    };
    at::Tensor d_added = da.defined() ? da.view(added.sizes()).to(added.scalar_type()) : at::Tensor();
    return {dx, batch_sum(dw_each).to(weight.scalar_type()), batch_sum(db_each).to(bias.scalar_type()), d_added,
            at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

thread_local bool fp32_gradients_channels_last = false;  // a ChannelsLastFp32Gradients scope is held

}  // namespace

ChannelsLastFp32Gradients::ChannelsLastFp32Gradients() : previous_(fp32_gradients_channels_last) {
  fp32_gradients_channels_last = true;
}
ChannelsLastFp32Gradients::~ChannelsLastFp32Gradients() { fp32_gradients_channels_last = previous_; }
bool channels_last_fp32_gradients() { return fp32_gradients_channels_last; }

bool group_norm_channels_last_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                      const at::Tensor& added) {
  if (!layout_fits(x, weight, bias) || (added.defined() && added.numel() != x.size(0) * x.size(1))) return false;
  // fp32 with gradients keeps libtorch's group norm outside the scope, so fp32 training keeps its
  // numbers (its activations are NCHW, but the attention blocks' reshape hands channels-last ones on).
  return x.scalar_type() == at::kBFloat16 || fp32_gradients_channels_last || !wants_gradient(x, weight, bias, added);
}

at::Tensor group_norm_channels_last(const at::Tensor& x, int64_t groups, const at::Tensor& weight,
                                    const at::Tensor& bias, double eps, bool silu, const at::Tensor& added) {
  check_inputs(x, groups, weight, bias, added);
  if (!wants_gradient(x, weight, bias, added)) return forward_kernel(x, groups, weight, bias, eps, silu, added);
  // A custom autograd function takes defined tensors only: no added term is an empty one.
  return GroupNormChannelsLastFunction::apply(x, weight, bias, added.defined() ? added : at::empty({0}, x.options()),
                                              groups, eps, silu);
}

}  // namespace lethe::models
