// The primitive layers the native networks are built from: linear, 2-D convolution, group
// norm and layer norm. They hold exactly the tensors a PyTorch checkpoint holds for the
// same layer (`weight`, `bias`), are created on any device (the meta device gives a shape
// table without allocating), and linear/conv layers accept an optional low-rank adapter
// (LoRA) that is not part of the base state dict.
#pragma once

#include <memory>
#include <optional>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

namespace lethe::models {

// delta W = scale * up @ down, with down [r, in, kh, kw] (or [r, in]) and up [out, r, 1, 1]
// (or [out, r]); scale = alpha / r. down starts random, up starts at zero (no change).
struct LowRankAdapter {
  at::Tensor down;
  at::Tensor up;
  double scale = 1.0;
  int64_t rank() const { return down.size(0); }
};

// scale * up.flatten(1) @ down.flatten(1): a low-rank update as a full weight [out, in * kh * kw]
// (reshape it to a conv weight), in up's and down's dtype. ComfyUI's rule for LoRA deltas.
at::Tensor low_rank_delta(const at::Tensor& up, const at::Tensor& down, double scale);

class LinearLayerImpl : public torch::nn::Module {
 public:
  LinearLayerImpl(int64_t in_features, int64_t out_features, bool bias, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);  // [..., in] -> [..., out]
  // PyTorch's default init: U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
  void reset_parameters(at::Generator& generator);

  int64_t in_features, out_features;
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined
  std::shared_ptr<LowRankAdapter> adapter;
};
TORCH_MODULE(LinearLayer);

class Conv2dLayerImpl : public torch::nn::Module {
 public:
  Conv2dLayerImpl(int64_t in_channels, int64_t out_channels, int64_t kernel, int64_t stride, int64_t padding,
                  const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);  // [B, in, H, W] -> [B, out, H', W']
  // forward(x) of a one-channel input, channels-last, computed with a zero second channel on x and
  // on the weight: the same values, without oneDNN's slow one-input-channel kernels on a CPU.
  // x [B, 1, H, W] -> [B, out, H', W'] channels-last. Needs in_channels 1 and no adapter.
  at::Tensor forward_one_channel(const at::Tensor& x);
  void reset_parameters(at::Generator& generator);

  int64_t in_channels, out_channels, kernel, stride, padding;
  at::Tensor weight;  // [out, in, k, k]
  at::Tensor bias;    // [out]
  std::shared_ptr<LowRankAdapter> adapter;
};
TORCH_MODULE(Conv2dLayer);

class GroupNormLayerImpl : public torch::nn::Module {
 public:
  GroupNormLayerImpl(int64_t groups, int64_t channels, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);       // [B, C, ...]
  // silu(forward(x + added)), fused for channels-last sampling; added [B, C, 1, 1] or undefined.
  at::Tensor forward_silu(const at::Tensor& x, const at::Tensor& added = {});
  void reset_parameters();

  int64_t groups;
  double eps;
  at::Tensor weight, bias;  // [C]
};
TORCH_MODULE(GroupNormLayer);

class LayerNormLayerImpl : public torch::nn::Module {
 public:
  LayerNormLayerImpl(int64_t features, double eps, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);  // [..., features]
  void reset_parameters();

  double eps;
  at::Tensor weight, bias;  // [features]
};
TORCH_MODULE(LayerNormLayer);

// A module whose only job is to give its children checkpoint-style names ("0", "2", ...):
// LDM Sequentials such as `in_layers` contain parameter-free entries (SiLU) at some indices.
class SlotsImpl : public torch::nn::Module {
 public:
  template <typename M>
  void put(const std::string& name, M module) {
    register_module(name, module);
  }
};
TORCH_MODULE(Slots);

// Re-initialises every layer below `module` with the defaults above, drawing from `generator`
// in a fixed order (the module tree order), so initialisation is reproducible from a seed.
void reset_all_parameters(torch::nn::Module& module, at::Generator& generator);

}  // namespace lethe::models
