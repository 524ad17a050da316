// Group normalisation, optionally followed by SiLU, of a channels-last CPU tensor, with its
// backward: the layout bf16 runs keep through the UNet on a CPU (DiffusionModel::predict,
// sampling copies). ATen's group_norm on a channels-last bf16 tensor takes a slow path (about
// 19x its NCHW time at [128, 32, 28, 28]; forward and backward 8x in the bench's training step,
// docs/performance.md §Precision), while oneDNN's bf16 convolutions run faster on channels-last input than on NCHW.
// Forward, per sample: one pass for the group statistics (shifted sums in fp32, groups
// combined in fp64) and one writing x * scale[c] + shift[c] (then SiLU). Backward, per sample:
// two passes recomputing the normalised value from x and the saved statistics (channel sums,
// then the input gradient); with the SiLU the first keeps its derivative's product for the
// second (one sample's worth of floats per thread). Each pass is a loop over the contiguous
// channels that the compiler vectorises; compiled for AVX-512, AVX2 and plain x86-64 and chosen at run time (GCC/Clang
// function multiversioning).
#pragma once

#include <ATen/ATen.h>

namespace lethe::models {

// Whether group_norm_channels_last applies: x a 4-d CPU tensor in channels-last layout (and not
// also NCHW-contiguous), fp32 or bf16, weight and bias 1-d of x's channels, `added` (if given)
// one value per sample and channel; in fp32 also no gradient wanted (grad mode off, or none of
// x, weight, bias and `added` requires grad), so that fp32 training keeps libtorch's group norm
// and the numbers it always had, unless a ChannelsLastFp32Gradients scope is held.
bool group_norm_channels_last_applies(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias,
                                      const at::Tensor& added = {});

// x [N, C, H, W] channels-last -> y of x's dtype and layout:
// y = (x' - mean_g) / sqrt(var_g + eps) * weight[c] + bias[c] with x' = x (+ added[n, c] when
// `added` [N, C] or [N, C, 1, 1] is given: the UNet's timestep embedding, folded in without a
// pass of its own), var the biased variance over the group's channels and all pixels of one
// sample (at::group_norm's definition); then y * sigmoid(y) when `silu`. Statistics and the
// affine map in fp32; a bf16 output is rounded to nearest even once. When grad mode is on and
// x, weight, bias or `added` requires grad, the result carries an autograd node whose backward
// gives each of them its gradient (x's in x's dtype and layout, computed in fp32; weight's and
// bias's summed over the batch in sample order, so independent of the thread count; fp32 too,
// when called directly). Throws (naming the shapes) when x, weight, bias or `added` do not fit
// the layout above.
at::Tensor group_norm_channels_last(const at::Tensor& x, int64_t groups, const at::Tensor& weight,
                                    const at::Tensor& bias, double eps, bool silu, const at::Tensor& added = {});

// While one is held, fp32 forwards with gradients on this thread run channels-last on a CPU too
// (DiffusionModel::predict), with this kernel and its backward. For the prompt attack, whose
// backward reaches only its input (no weight gradients): it ran 1.15x faster channels-last on an
// AVX2 CPU, docs/performance.md §Precision. Training holds none: fp32 training stays NCHW on
// libtorch's group norm. Nests; restores what it found.
class ChannelsLastFp32Gradients {
 public:
  ChannelsLastFp32Gradients();
  ~ChannelsLastFp32Gradients();
  ChannelsLastFp32Gradients(const ChannelsLastFp32Gradients&) = delete;
  ChannelsLastFp32Gradients& operator=(const ChannelsLastFp32Gradients&) = delete;

 private:
  bool previous_;
};
// Whether a ChannelsLastFp32Gradients scope is held on this thread.
bool channels_last_fp32_gradients();

}  // namespace lethe::models
