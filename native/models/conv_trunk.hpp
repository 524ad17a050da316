// A small ResNet-style convolutional trunk (stem + stages of residual blocks, GroupNorm,
// SiLU) shared by the bench's copy descriptor and classifier.
#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "io/json_config.hpp"
#include "models/layers.hpp"

namespace lethe::models {

struct ConvTrunkConfig {
  int64_t in_channels = 1;
  std::vector<int64_t> widths = {32, 64, 128};  // one stage per width; stages after the first halve H, W
  int64_t blocks_per_stage = 1;
  int64_t norm_groups = 8;

  template <typename V>
  void visit(V& v) {
    v("in_channels", in_channels);
    v("widths", widths);
    v("blocks_per_stage", blocks_per_stage);
    v("norm_groups", norm_groups);
  }
  void validate(const std::string& where) const;
};

// conv3x3 - GN - SiLU - conv3x3 - GN, plus the (1x1 conv) skip, then SiLU.
class ResidualBlockImpl : public torch::nn::Module {
 public:
  ResidualBlockImpl(int64_t in, int64_t out, int64_t stride, int64_t groups, const at::TensorOptions& options);
  at::Tensor forward(const at::Tensor& x);  // [B, in, H, W] -> [B, out, H/stride, W/stride]
  Conv2dLayer conv1{nullptr}, conv2{nullptr}, skip{nullptr};
  GroupNormLayer norm1{nullptr}, norm2{nullptr};
};
TORCH_MODULE(ResidualBlock);

class ConvTrunkImpl : public torch::nn::Module {
 public:
  explicit ConvTrunkImpl(const ConvTrunkConfig& config, const at::TensorOptions& options = {});
  at::Tensor forward(const at::Tensor& x);  // [B, in, H, W] -> [B, widths.back(), H', W']
  const ConvTrunkConfig& config() const { return config_; }

 private:
  ConvTrunkConfig config_;
  Conv2dLayer stem_conv_{nullptr};
  GroupNormLayer stem_norm_{nullptr};
  std::vector<ResidualBlock> blocks_;
};
TORCH_MODULE(ConvTrunk);

}  // namespace lethe::models
