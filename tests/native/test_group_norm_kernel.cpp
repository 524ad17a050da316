// The channels-last group norm (+ SiLU) kernel (models/group_norm_kernel.hpp) against ATen's
// group_norm and silu computed in fp64 from the same input values: fp32 to fp32 rounding, bf16
// to one bf16 rounding; its gradients (input, weight, bias, added term) against fp64 autograd
// through ATen's; when it applies; the layer's fused path.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include "models/group_norm_kernel.hpp"
#include "models/layers.hpp"
#include "test_helpers.hpp"

using namespace lethe;

namespace {

struct Case {
  int64_t batch, channels, groups, height, width;
};

// Random input with per-channel offsets and spreads (a mean far from 0 tests the two-pass
// variance), weights and biases wide enough that the SiLU sees values far below -20 and above 20.
struct Inputs {
  at::Tensor x, weight, bias;  // x [N, C, H, W] fp32, NCHW
};

Inputs make_inputs(const Case& c) {
  Inputs in;
  const at::Tensor offset = at::randn({1, c.channels, 1, 1}) * 3.0;
  const at::Tensor spread = at::rand({1, c.channels, 1, 1}) * 2.0 + 0.1;
  in.x = at::randn({c.batch, c.channels, c.height, c.width}) * spread + offset;
  in.weight = at::randn({c.channels}) * 8.0;
  in.bias = at::randn({c.channels}) * 4.0;
  return in;
}

at::Tensor reference(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias, double eps,
                     bool silu) {
  at::Tensor y = at::group_norm(x.to(at::kDouble).contiguous(), groups, weight.to(at::kDouble),
                                bias.to(at::kDouble), eps);
  return silu ? at::silu(y) : y;
}

const std::vector<Case> kCases = {{3, 32, 8, 5, 7}, {2, 64, 32, 7, 3}, {4, 40, 4, 6, 6}, {1, 320, 32, 4, 4}};

}  // namespace

TEST(GroupNormKernel, Fp32MatchesAtenInDoublePrecision) {
  for (const Case& c : kCases) {
    for (bool silu : {false, true}) {
      const Inputs in = make_inputs(c);
      const at::Tensor x = in.x.contiguous(at::MemoryFormat::ChannelsLast);
      const at::Tensor got = models::group_norm_channels_last(x, c.groups, in.weight, in.bias, 1e-5, silu);
      EXPECT_TRUE(got.is_contiguous(at::MemoryFormat::ChannelsLast));
      EXPECT_EQ(got.scalar_type(), at::kFloat);
      const at::Tensor expected = reference(in.x, c.groups, in.weight, in.bias, 1e-5, silu);
      EXPECT_TRUE(at::allclose(got.to(at::kDouble), expected, 2e-6, 2e-5))
          << "C " << c.channels << " silu " << silu << " max error "
          << (got.to(at::kDouble) - expected).abs().max().item<double>();
    }
  }
}

TEST(GroupNormKernel, Bf16IsTheFp64ResultRoundedOnce) {
  for (const Case& c : kCases) {
    for (bool silu : {false, true}) {
      const Inputs in = make_inputs(c);
      const at::Tensor x = in.x.to(at::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast);
      const at::Tensor weight = in.weight.to(at::kBFloat16), bias = in.bias.to(at::kBFloat16);
      const at::Tensor got = models::group_norm_channels_last(x, c.groups, weight, bias, 1e-6, silu);
      EXPECT_EQ(got.scalar_type(), at::kBFloat16);
      const at::Tensor expected = reference(x, c.groups, weight, bias, 1e-6, silu);
      // One rounding to bf16 (8 significant bits): |error| <= 2^-8 |y|, and near zero the fp32
      // cancellation of x * scale + shift (|x * scale| up to ~50 here, 2^-24 of it).
      const at::Tensor error = (got.to(at::kDouble) - expected).abs();
      const at::Tensor bound = expected.abs() * std::ldexp(1.0, -8) + 1e-5;
      EXPECT_TRUE((error <= bound).all().item<bool>())
          << "C " << c.channels << " silu " << silu << " worst excess " << (error - bound).max().item<double>();
      // And it is ATen's own bf16 result (NCHW, then silu) to within its roundings.
      at::Tensor aten = at::group_norm(x.contiguous(), c.groups, weight, bias, 1e-6);
      if (silu) aten = at::silu(aten);
      // (ATen rounds twice when silu: its group norm's output and then the silu's, up to 2 steps.)
      EXPECT_TRUE(at::allclose(got.to(at::kFloat), aten.to(at::kFloat), std::ldexp(1.0, -6), 1e-3));
    }
  }
}

TEST(GroupNormKernel, AnAddedPerSampleChannelTermIsNormalisedWithTheInput) {
  for (const Case& c : kCases) {
    const Inputs in = make_inputs(c);
    const at::Tensor added = at::randn({c.batch, c.channels, 1, 1}) * 5.0;  // the UNet's timestep embedding
    const at::Tensor got = models::group_norm_channels_last(in.x.contiguous(at::MemoryFormat::ChannelsLast), c.groups,
                                                            in.weight, in.bias, 1e-5, true, added);
    const at::Tensor expected = reference(in.x + added, c.groups, in.weight, in.bias, 1e-5, true);
    EXPECT_TRUE(at::allclose(got.to(at::kDouble), expected, 2e-6, 2e-5)) << "C " << c.channels;
  }
  lethe::testing::expect_error(
      [] {
        models::group_norm_channels_last(at::randn({2, 8, 3, 3}).contiguous(at::MemoryFormat::ChannelsLast), 4,
                                         at::ones({8}), at::zeros({8}), 1e-5, true, at::randn({2, 4}));
      },
      {"added term", "[2, 8]", "[2, 4]"});
}

TEST(GroupNormKernel, NaNStaysNaNAndHugeSiluInputsSaturate) {
  at::Tensor x = at::randn({1, 8, 2, 2});
  x.index_put_({0, 0, 0, 0}, std::nan(""));
  const at::Tensor w = at::ones({8}), b = at::zeros({8});
  const at::Tensor got = models::group_norm_channels_last(x.to(at::kBFloat16).contiguous(at::MemoryFormat::ChannelsLast),
                                                          4, w, b, 1e-5, true);
  EXPECT_TRUE(at::isnan(got.select(1, 0)).all().item<bool>());  // group 0 (channels 0, 1) is NaN
  EXPECT_TRUE(at::isnan(got.select(1, 1)).all().item<bool>());
  EXPECT_FALSE(at::isnan(got.narrow(1, 2, 6)).any().item<bool>());
  // A SiLU input of -1000 gives (-)0 and +1000 gives itself: weight 1000, the normalised x is +-1.
  const at::Tensor two = at::tensor({-1.0f, 1.0f, -1.0f, 1.0f}).view({1, 1, 2, 2}).expand({1, 2, 2, 2}).contiguous();
  const at::Tensor y = models::group_norm_channels_last(two.contiguous(at::MemoryFormat::ChannelsLast), 1,
                                                        at::full({2}, 1000.0), at::zeros({2}), 0.0, true);
  EXPECT_TRUE(at::allclose(y.contiguous(), at::silu(two * 1000.0), 1e-6, 1e-6)) << y;
}

TEST(GroupNormKernel, AppliesOnlyToChannelsLastTensors) {
  const at::Tensor x = at::randn({2, 8, 3, 3});
  const at::Tensor w = at::ones({8}), b = at::zeros({8});
  const at::Tensor last = x.contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(models::group_norm_channels_last_applies(last, w, b));
  const at::Tensor trainable = at::ones({8}).requires_grad_();
  EXPECT_TRUE(models::group_norm_channels_last_applies(last.to(at::kBFloat16), trainable, b));  // with its backward
  EXPECT_FALSE(models::group_norm_channels_last_applies(last, trainable, b));  // fp32 trains through libtorch's
  {
    at::NoGradGuard no_grad;
    EXPECT_TRUE(models::group_norm_channels_last_applies(last, trainable, b));
  }
  {
    models::ChannelsLastFp32Gradients scope;  // the prompt attack's: fp32 with its backward
    EXPECT_TRUE(models::channels_last_fp32_gradients());
    EXPECT_TRUE(models::group_norm_channels_last_applies(last, trainable, b));
    {
      models::ChannelsLastFp32Gradients nested;
    }
    EXPECT_TRUE(models::channels_last_fp32_gradients());
  }
  EXPECT_FALSE(models::channels_last_fp32_gradients());
  EXPECT_FALSE(models::group_norm_channels_last_applies(last, trainable, b));
  EXPECT_FALSE(models::group_norm_channels_last_applies(x, w, b));                      // NCHW
  EXPECT_FALSE(models::group_norm_channels_last_applies(last.to(at::kDouble), w, b));   // dtype
  EXPECT_FALSE(models::group_norm_channels_last_applies(last, at::ones({4}), b));       // channels
  EXPECT_FALSE(models::group_norm_channels_last_applies(last, w, b, at::ones({2, 4})));  // added term
  lethe::testing::expect_error([&] { models::group_norm_channels_last(x, 4, w, b, 1e-5, false); },
                               {"channels-last", "[2, 8, 3, 3]"});
}

namespace {

// The gradients of sum(y * probe) with respect to x, weight, bias and the added term.
struct Gradients {
  at::Tensor x, weight, bias, added;
};

// Through ATen in fp64 from the values of `x` (any dtype), the reference.
Gradients reference_gradients(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                              const at::Tensor& added, bool silu, const at::Tensor& probe) {
  at::Tensor x64 = x.detach().to(at::kDouble).contiguous().requires_grad_();
  at::Tensor w64 = weight.detach().to(at::kDouble).requires_grad_(), b64 = bias.detach().to(at::kDouble).requires_grad_();
  at::Tensor a64 = added.detach().to(at::kDouble).requires_grad_();
  at::Tensor y = at::group_norm(x64 + a64.view({x.size(0), x.size(1), 1, 1}), groups, w64, b64, 1e-5);
  if (silu) y = at::silu(y);
  (y * probe.to(at::kDouble)).sum().backward();
  return {x64.grad(), w64.grad(), b64.grad(), a64.grad()};
}

Gradients kernel_gradients(const at::Tensor& x, int64_t groups, const at::Tensor& weight, const at::Tensor& bias,
                           const at::Tensor& added, bool silu, const at::Tensor& probe) {
  at::Tensor xg = x.detach().contiguous(at::MemoryFormat::ChannelsLast).requires_grad_();
  at::Tensor wg = weight.detach().clone().requires_grad_(), bg = bias.detach().clone().requires_grad_();
  at::Tensor ag = added.detach().clone().requires_grad_();
  at::Tensor y = models::group_norm_channels_last(xg, groups, wg, bg, 1e-5, silu, ag);
  EXPECT_TRUE(y.requires_grad());
  (y.to(at::kFloat) * probe).sum().backward();
  EXPECT_EQ(xg.grad().scalar_type(), x.scalar_type());
  EXPECT_TRUE(xg.grad().is_contiguous(at::MemoryFormat::ChannelsLast));
  return {xg.grad(), wg.grad(), bg.grad(), ag.grad()};
}

// Largest |got - want| relative to want's largest magnitude.
double max_relative_error(const at::Tensor& got, const at::Tensor& want) {
  return (got.to(at::kDouble) - want).abs().max().item<double>() / want.abs().max().item<double>();
}

}  // namespace

TEST(GroupNormKernel, Fp32GradientsMatchAtenInDoublePrecision) {
  for (const Case& c : kCases) {
    for (bool silu : {false, true}) {
      const Inputs in = make_inputs(c);
      const at::Tensor weight = in.weight / 8.0, bias = in.bias / 4.0;  // SiLU inputs of order 1: a live derivative
      const at::Tensor added = at::randn({c.batch, c.channels}), probe = at::randn(in.x.sizes());
      const Gradients want = reference_gradients(in.x, c.groups, weight, bias, added, silu, probe);
      const Gradients got = kernel_gradients(in.x, c.groups, weight, bias, added, silu, probe);
      EXPECT_LT(max_relative_error(got.x, want.x), 2e-5) << c.channels << " channels, silu " << silu;
      EXPECT_LT(max_relative_error(got.weight, want.weight), 2e-5) << c.channels << " channels, silu " << silu;
      EXPECT_LT(max_relative_error(got.bias, want.bias), 2e-5) << c.channels << " channels, silu " << silu;
      EXPECT_LT(max_relative_error(got.added, want.added), 2e-5) << c.channels << " channels, silu " << silu;
    }
  }
}

TEST(GroupNormKernel, Bf16GradientsMatchAtenWithinBf16Rounding) {
  for (const Case& c : kCases) {
    const Inputs in = make_inputs(c);
    const at::Tensor x = in.x.to(at::kBFloat16), weight = in.weight / 8.0, bias = in.bias / 4.0;
    const at::Tensor added = at::randn({c.batch, c.channels});
    // The gradient arrives in bf16 (the next convolution's), so the reference sees the same values.
    const at::Tensor probe = at::randn(in.x.sizes()).to(at::kBFloat16).to(at::kFloat);
    const Gradients want = reference_gradients(x, c.groups, weight, bias, added, true, probe);
    const Gradients got = kernel_gradients(x, c.groups, weight, bias, added, true, probe);
    // dx is computed in fp32 and rounded once to bf16 (relative 2^-8 of each value); the sums are fp32.
    EXPECT_LT(max_relative_error(got.x, want.x), 8e-3) << c.channels << " channels";
    EXPECT_LT(max_relative_error(got.weight, want.weight), 1e-4) << c.channels << " channels";
    EXPECT_LT(max_relative_error(got.bias, want.bias), 1e-4) << c.channels << " channels";
    EXPECT_LT(max_relative_error(got.added, want.added), 1e-3) << c.channels << " channels";
  }
}

TEST(GroupNormKernel, GradientsAreTheSameBitsWithAnyThreadCount) {
  const Inputs in = make_inputs({5, 32, 8, 6, 6});
  const at::Tensor x = in.x.to(at::kBFloat16), added = at::randn({5, 32}), probe = at::randn(in.x.sizes());
  const auto gradients_on = [&](int threads) {
    lethe::testing::ScopedThreads scope(threads);
    return kernel_gradients(x, 8, in.weight, in.bias, added, true, probe);
  };
  const Gradients one = gradients_on(1), several = gradients_on(std::max(2, at::get_num_threads()));
  EXPECT_TRUE(at::equal(one.x, several.x));
  EXPECT_TRUE(at::equal(one.weight, several.weight));
  EXPECT_TRUE(at::equal(one.bias, several.bias));
  EXPECT_TRUE(at::equal(one.added, several.added));
}

TEST(GroupNormKernel, WithoutAnAddedTermItsGradientsAreLibtorchs) {
  models::GroupNormLayer layer(4, 16, 1e-5, at::TensorOptions());
  {
    at::NoGradGuard no_grad;
    layer->weight.normal_();
    layer->bias.normal_();
  }
  const at::Tensor x = at::randn({2, 16, 4, 5}), probe = at::randn({2, 16, 4, 5});
  at::Tensor last = x.contiguous(at::MemoryFormat::ChannelsLast).requires_grad_();
  (models::group_norm_channels_last(last, 4, layer->weight, layer->bias, 1e-5, true) * probe).sum().backward();
  const at::Tensor fused_weight = layer->weight.grad().clone();
  layer->weight.mutable_grad() = at::Tensor();
  at::Tensor plain = x.clone().requires_grad_();
  (at::silu(layer->forward(plain)) * probe).sum().backward();  // NCHW: ATen's group norm
  EXPECT_TRUE(at::allclose(last.grad(), plain.grad(), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(fused_weight, layer->weight.grad(), 1e-5, 1e-5));
}

TEST(GroupNormKernel, TheLayerTakesTheFusedPathForChannelsLastAndAtenOtherwise) {
  models::GroupNormLayer layer(4, 16, 1e-5, at::TensorOptions());
  {
    at::NoGradGuard no_grad;
    layer->weight.normal_();
    layer->bias.normal_();
  }
  const at::Tensor x = at::randn({2, 16, 4, 5});
  at::NoGradGuard no_grad;
  const at::Tensor fused = layer->forward_silu(x.contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(fused.is_contiguous(at::MemoryFormat::ChannelsLast));
  EXPECT_TRUE(at::allclose(fused, layer->forward_silu(x), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(layer->forward(x.contiguous(at::MemoryFormat::ChannelsLast)), layer->forward(x), 1e-5, 1e-5));
  const at::Tensor added = at::randn({2, 16, 1, 1});
  EXPECT_TRUE(at::allclose(layer->forward_silu(x.contiguous(at::MemoryFormat::ChannelsLast), added),
                           at::silu(layer->forward(x + added)), 1e-5, 1e-5));
  EXPECT_TRUE(at::allclose(layer->forward_silu(x, added), at::silu(layer->forward(x + added)), 1e-6, 1e-6));
}
