// Group normalisation, optionally followed by SiLU, of a channels-last CPU tensor without
// autograd: the sampler's path (DiffusionModel::sampling_copy). ATen's group_norm on a
// channels-last bf16 tensor takes a slow path (about 19x its NCHW time at [128, 32, 28, 28],
// docs/performance.md §Precision), while oneDNN's bf16 convolutions run about twice as fast on
// channels-last input as on NCHW. This kernel lets the sampler keep channels-last through the
// whole UNet: per sample, one pass for the group statistics (shifted sums in fp32, groups
// combined in fp64) and one writing x * scale[c] + shift[c] (then SiLU), each a loop over the
// contiguous channels that the compiler vectorises; compiled for AVX-512, AVX2 and plain
// x86-64 and chosen at run time (GCC/Clang function multiversioning).
#pragma once

#include <ATen/ATen.h>

namespace lethe::models {

// Whether group_norm_channels_last applies: x a 4-d CPU tensor in channels-last layout (and not
// also NCHW-contiguous), fp32 or bf16, weight and bias 1-d of x's channels, and no gradient
// wanted (grad mode off, or none of x, weight, bias and `added` requires grad).
bool group_norm_channels_last_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                      const at::Tensor& added = {});

// x [N, C, H, W] channels-last -> y of x's dtype and layout:
// y = (x' - mean_g) / sqrt(var_g + eps) * weight[c] + bias[c] with x' = x (+ added[n, c] when
// `added` [N, C] or [N, C, 1, 1] is given: the UNet's timestep embedding, folded in without a
// pass of its own), var the biased variance over the group's channels and all pixels of one
// sample (at::group_norm's definition); then y * sigmoid(y) when `silu`. Statistics and the
// affine map in fp32; a bf16 output is rounded to nearest even once. Throws (naming the shapes)
// when group_norm_channels_last_applies is false.
at::Tensor group_norm_channels_last(const at::Tensor& x, int64_t groups, const at::Tensor& weight,
                                    const at::Tensor& bias, double eps, bool silu, const at::Tensor& added = {});

}  // namespace lethe::models
