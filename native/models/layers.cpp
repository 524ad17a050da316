#include "models/layers.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>

#include "core/error.hpp"
#include "models/group_norm_kernel.hpp"

namespace lethe::models {

namespace {

void uniform_init(at::Tensor& tensor, double bound, at::Generator& generator) {
  at::NoGradGuard no_grad;
  tensor.uniform_(-bound, bound, generator);
}

// x in the dtype an op with `weight` computes in: the weight's, except under autocast, whose
// op policy decides (bf16 activations then stay bf16 instead of bouncing through fp32, and
// norms take bf16 input with fp32 weights, accumulating in fp32).
at::Tensor op_input(const at::Tensor& x, const at::Tensor& weight) {
  if (at::autocast::is_autocast_enabled(x.device().type())) return x;
  return x.to(weight.scalar_type());
}

// y += scale * up(down(x)) for a linear adapter.
at::Tensor apply_linear_adapter(const at::Tensor& x, const LowRankAdapter& adapter) {
  at::Tensor hidden = at::linear(op_input(x, adapter.down), adapter.down);  // [..., r]
  return at::linear(hidden, adapter.up).mul(adapter.scale);                       // [..., out]
}

}  // namespace

at::Tensor low_rank_delta(const at::Tensor& up, const at::Tensor& down, double scale) {
  return at::matmul(up.flatten(1), down.flatten(1)).mul(scale);  // [out, in(*k*k)]
}

LinearLayerImpl::LinearLayerImpl(int64_t in, int64_t out, bool has_bias, const at::TensorOptions& options)
    : in_features(in), out_features(out) {
  weight = register_parameter("weight", at::empty({out, in}, options));
  if (has_bias) bias = register_parameter("bias", at::empty({out}, options));
}

void LinearLayerImpl::reset_parameters(at::Generator& generator) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  uniform_init(weight, bound, generator);
  if (bias.defined()) uniform_init(bias, bound, generator);
}

at::Tensor LinearLayerImpl::forward(const at::Tensor& x) {
  at::Tensor y = at::linear(op_input(x, weight), weight, bias);
  if (adapter) y = y + apply_linear_adapter(x, *adapter).to(y.scalar_type());
  return y;
}

Conv2dLayerImpl::Conv2dLayerImpl(int64_t in, int64_t out, int64_t kernel_size, int64_t stride_, int64_t padding_,
                                 const at::TensorOptions& options)
    : in_channels(in), out_channels(out), kernel(kernel_size), stride(stride_), padding(padding_) {
  weight = register_parameter("weight", at::empty({out, in, kernel, kernel}, options));
  bias = register_parameter("bias", at::empty({out}, options));
}

void Conv2dLayerImpl::reset_parameters(at::Generator& generator) {
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_channels * kernel * kernel));
  uniform_init(weight, bound, generator);
  uniform_init(bias, bound, generator);
}

at::Tensor Conv2dLayerImpl::forward(const at::Tensor& x) {
  at::Tensor y = at::conv2d(op_input(x, weight), weight, bias, {stride, stride}, {padding, padding});
  if (adapter) {
    // down: a conv with the base kernel geometry to rank channels; up: a 1x1 conv back.
    at::Tensor hidden = at::conv2d(op_input(x, adapter->down), adapter->down, {}, {stride, stride},
                                   {padding, padding});                  // [B, r, H', W']
    y = y + at::conv2d(hidden, adapter->up).mul(adapter->scale).to(y.scalar_type());  // [B, out, H', W']
  }
  return y;
}

at::Tensor Conv2dLayerImpl::forward_one_channel(const at::Tensor& x) {
  check(in_channels == 1 && !adapter && x.dim() == 4 && x.size(1) == 1,
        "Conv2d: the zero-channel form needs one input channel and no adapter; got x ", x.sizes());
  const at::Tensor padded = at::constant_pad_nd(op_input(x, weight), {0, 0, 0, 0, 0, 1})
                                .contiguous(at::MemoryFormat::ChannelsLast);            // [B, 2, H, W]
  const at::Tensor padded_weight = at::constant_pad_nd(weight, {0, 0, 0, 0, 0, 1});    // [out, 2, k, k]
  return at::conv2d(padded, padded_weight, bias, {stride, stride}, {padding, padding});
}

GroupNormLayerImpl::GroupNormLayerImpl(int64_t groups_, int64_t channels, double eps_,
                                       const at::TensorOptions& options)
    : groups(groups_), eps(eps_) {
  check(channels % groups == 0, "GroupNorm: ", channels, " channels are not divisible into ", groups, " groups");
  weight = register_parameter("weight", at::empty({channels}, options));
  bias = register_parameter("bias", at::empty({channels}, options));
}

void GroupNormLayerImpl::reset_parameters() {
  at::NoGradGuard no_grad;
  weight.fill_(1.0);
  bias.zero_();
}

at::Tensor GroupNormLayerImpl::forward(const at::Tensor& x) {
  if (group_norm_channels_last_applies(x, weight, bias))
    return group_norm_channels_last(x, groups, weight, bias, eps, /*silu=*/false);
  return at::group_norm(op_input(x, weight), groups, weight, bias, eps);
}

at::Tensor GroupNormLayerImpl::forward_silu(const at::Tensor& x, const at::Tensor& added) {
  if (group_norm_channels_last_applies(x, weight, bias, added))
    return group_norm_channels_last(x, groups, weight, bias, eps, /*silu=*/true, added);
  const at::Tensor input = added.defined() ? x + added : x;
  return at::silu(at::group_norm(op_input(input, weight), groups, weight, bias, eps));
}

LayerNormLayerImpl::LayerNormLayerImpl(int64_t features, double eps_, const at::TensorOptions& options) : eps(eps_) {
  weight = register_parameter("weight", at::empty({features}, options));
  bias = register_parameter("bias", at::empty({features}, options));
}

void LayerNormLayerImpl::reset_parameters() {
  at::NoGradGuard no_grad;
  weight.fill_(1.0);
  bias.zero_();
}

at::Tensor LayerNormLayerImpl::forward(const at::Tensor& x) {
  return at::layer_norm(op_input(x, weight), {weight.size(0)}, weight, bias, eps);
}

void reset_all_parameters(torch::nn::Module& module, at::Generator& generator) {
  for (const auto& child : module.modules(/*include_self=*/true)) {
    if (auto* linear = dynamic_cast<LinearLayerImpl*>(child.get())) linear->reset_parameters(generator);
    if (auto* conv = dynamic_cast<Conv2dLayerImpl*>(child.get())) conv->reset_parameters(generator);
    if (auto* group_norm = dynamic_cast<GroupNormLayerImpl*>(child.get())) group_norm->reset_parameters();
    if (auto* layer_norm = dynamic_cast<LayerNormLayerImpl*>(child.get())) layer_norm->reset_parameters();
  }
}

}  // namespace lethe::models
