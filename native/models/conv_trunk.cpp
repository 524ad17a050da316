#include "models/conv_trunk.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::models {

void ConvTrunkConfig::validate(const std::string& where) const {
  check(in_channels >= 1, where, ".in_channels: expected >= 1, got ", in_channels);
  check(!widths.empty(), where, ".widths: expected at least one stage");
  for (int64_t width : widths)
    check(width > 0 && width % norm_groups == 0, where, ".widths: ", width, " is not a positive multiple of norm_groups = ",
          norm_groups);
  check(blocks_per_stage >= 1, where, ".blocks_per_stage: expected >= 1, got ", blocks_per_stage);
}

ResidualBlockImpl::ResidualBlockImpl(int64_t in, int64_t out, int64_t stride, int64_t groups,
                                     const at::TensorOptions& options) {
  conv1 = register_module("conv1", Conv2dLayer(in, out, 3, stride, 1, options));
  norm1 = register_module("norm1", GroupNormLayer(groups, out, 1e-5, options));
  conv2 = register_module("conv2", Conv2dLayer(out, out, 3, 1, 1, options));
  norm2 = register_module("norm2", GroupNormLayer(groups, out, 1e-5, options));
  if (in != out || stride != 1) skip = register_module("skip", Conv2dLayer(in, out, 1, stride, 0, options));
}

at::Tensor ResidualBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = at::silu(norm1(conv1(x)));
  h = norm2(conv2(h));
  return at::silu(h + (skip ? skip(x) : x));
}

ConvTrunkImpl::ConvTrunkImpl(const ConvTrunkConfig& config, const at::TensorOptions& options) : config_(config) {
  config_.validate("conv trunk");
  auto stem = register_module("stem", Slots());
  stem_conv_ = Conv2dLayer(config.in_channels, config.widths[0], 3, 1, 1, options);
  stem_norm_ = GroupNormLayer(config.norm_groups, config.widths[0], 1e-5, options);
  stem->put("conv", stem_conv_);
  stem->put("norm", stem_norm_);
  auto stages = register_module("stages", Slots());
  int64_t channels = config.widths[0];
  for (size_t stage = 0; stage < config.widths.size(); ++stage) {
    auto list = Slots();
    stages->put(std::to_string(stage), list);
    for (int64_t b = 0; b < config.blocks_per_stage; ++b) {
      const int64_t stride = (stage > 0 && b == 0) ? 2 : 1;
      blocks_.push_back(ResidualBlock(channels, config.widths[stage], stride, config.norm_groups, options));
      list->put(std::to_string(b), blocks_.back());
      channels = config.widths[stage];
    }
  }
}

at::Tensor ConvTrunkImpl::forward(const at::Tensor& x) {
  at::Tensor h = at::silu(stem_norm_(stem_conv_(x)));  // [B, w0, H, W]
  for (auto& block : blocks_) h = block(h);
  return h;
}

}  // namespace lethe::models
