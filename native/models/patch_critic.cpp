#include "models/patch_critic.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>

#include "core/error.hpp"

namespace lethe::models {

namespace {

constexpr int64_t kKernel = 4;
constexpr double kSlope = 0.2;          // LeakyReLU
constexpr double kNormEps = 1e-12;      // nn.utils.spectral_norm's eps

at::Tensor normalized(const at::Tensor& x) { return x / x.norm().clamp_min(kNormEps); }

// Output channels of each convolution and whether it is a stride-2 one.
std::vector<std::pair<int64_t, int64_t>> layer_shapes(int64_t input_channels, const PatchCriticConfig& config) {
  std::vector<std::pair<int64_t, int64_t>> shapes;  // (in, out)
  int64_t width = config.channels;
  shapes.emplace_back(input_channels, width);
  for (int64_t n = 1; n <= config.layers; ++n) {
    const int64_t next = config.channels * std::min<int64_t>(int64_t{1} << std::min<int64_t>(n, 3), 8);
    shapes.emplace_back(width, next);  // the last of these is the first stride-1 convolution
    width = next;
  }
  shapes.emplace_back(width, 1);
  return shapes;
}

}  // namespace

void PatchCriticConfig::validate(const std::string& where) const {
  check(channels >= 1, where, ".critic_channels: expected >= 1, got ", channels);
  check(layers >= 1 && layers <= 6, where, ".critic_layers: expected 1 to 6, got ", layers);
}

std::pair<int64_t, int64_t> PatchCritic::output_size(int64_t height, int64_t width, const PatchCriticConfig& config,
                                                     const std::string& where) {
  int64_t h = height, w = width;
  for (int64_t i = 0; i < config.layers; ++i) h /= 2, w /= 2;
  h -= 2, w -= 2;
  check(h >= 1 && w >= 1, where, ": the critic's ", config.layers, " stride-2 layers leave no patch of a ", height, "x",
        width, " input (it needs at least ", 3 << config.layers, "x", 3 << config.layers,
        "); use fewer critic_layers");
  return {h, w};
}

PatchCritic::PatchCritic(int64_t input_channels, PatchCriticConfig config, at::Generator generator)
    : input_channels_(input_channels), config_(std::move(config)) {
  build(nullptr, &generator, "critic");
}

PatchCritic::PatchCritic(int64_t input_channels, PatchCriticConfig config,
                         const std::map<std::string, at::Tensor>& state, const std::string& where)
    : input_channels_(input_channels), config_(std::move(config)) {
  build(&state, nullptr, where);
  const auto built = this->state();
  for (const auto& [name, tensor] : state) check(built.count(name), where, ": unexpected critic tensor '", name, "'");
}

void PatchCritic::build(const std::map<std::string, at::Tensor>* state, at::Generator* generator,
                        const std::string& where) {
  config_.validate(where);
  const auto shapes = layer_shapes(input_channels_, config_);
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto [in, out] = shapes[i];
    Layer layer;
    layer.stride = static_cast<int64_t>(i) < config_.layers ? 2 : 1;
    const bool normalised = config_.spectral_norm && i + 1 < shapes.size();
    const std::string prefix = std::to_string(i) + ".";
    auto take = [&](const std::string& name, at::IntArrayRef shape) {
      auto found = state->find(prefix + name);
      check(found != state->end(), where, ": critic tensor '", prefix, name, "' is missing");
      check(found->second.sizes() == shape, where, ": critic tensor '", prefix, name, "' has shape ",
            found->second.sizes(), ", expected ", shape);
      return found->second.to(at::kFloat).clone();
    };
    if (state) {
      layer.weight = take("weight", {out, in, kKernel, kKernel});
      layer.bias = take("bias", {out});
      if (normalised) {
        layer.u = take("u", {out});
        layer.v = take("v", {in * kKernel * kKernel});
      }
    } else {
      const double bound = 1.0 / std::sqrt(static_cast<double>(in * kKernel * kKernel));
      layer.weight = at::empty({out, in, kKernel, kKernel}, at::kFloat).uniform_(-bound, bound, *generator);
      layer.bias = at::empty({out}, at::kFloat).uniform_(-bound, bound, *generator);
      if (normalised) {
        layer.u = normalized(at::randn({out}, *generator, at::kFloat));
        layer.v = normalized(at::randn({in * kKernel * kKernel}, *generator, at::kFloat));
      }
    }
    layer.weight.requires_grad_(true);
    layer.bias.requires_grad_(true);
    layers_.push_back(std::move(layer));
  }
}

at::Tensor PatchCritic::forward(const at::Tensor& x, const at::Tensor& mask, bool update) {
  check(x.dim() == 4 && x.size(1) + 1 == input_channels_, "critic: expected a prediction of ", input_channels_ - 1,
        " channels [B, C, H, W], got ", x.sizes());
  output_size(x.size(2), x.size(3), config_, "critic");
  at::Tensor h = at::cat({x.to(at::kFloat), mask.to(x.device(), at::kFloat).expand({x.size(0), 1, x.size(2), x.size(3)})},
                         1);  // [B, C + 1, H, W]
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer& layer = layers_[i];
    at::Tensor weight = update ? layer.weight : layer.weight.detach();
    at::Tensor bias = update ? layer.bias : layer.bias.detach();
    if (layer.u.defined()) {
      at::Tensor matrix = weight.flatten(1);  // [out, in * k * k]
      if (update) {
        at::NoGradGuard no_grad;
        layer.v.copy_(normalized(at::mv(matrix.t(), layer.u)));
        layer.u.copy_(normalized(at::mv(matrix, layer.v)));
      }
      // Copies, as nn.utils.spectral_norm takes them: the next training forward updates u, v
      // in place while this forward's graph still holds them.
      weight = weight / at::dot(layer.u.clone(), at::mv(matrix, layer.v.clone()));
    }
    h = at::conv2d(h, weight, bias, layer.stride, 1);
    if (i + 1 < layers_.size()) h = at::leaky_relu(h, kSlope);
  }
  return h;  // [B, 1, h, w]
}

void PatchCritic::to(const at::Device& device) {
  for (auto& layer : layers_) {
    layer.weight = layer.weight.detach().to(device).requires_grad_(true);
    layer.bias = layer.bias.detach().to(device).requires_grad_(true);
    if (layer.u.defined()) {
      layer.u = layer.u.to(device);
      layer.v = layer.v.to(device);
    }
  }
}

std::vector<std::pair<std::string, at::Tensor>> PatchCritic::named_parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    out.emplace_back(std::to_string(i) + ".weight", layers_[i].weight);
    out.emplace_back(std::to_string(i) + ".bias", layers_[i].bias);
  }
  return out;
}

std::vector<at::Tensor> PatchCritic::parameters() const {
  std::vector<at::Tensor> out;
  for (const auto& [name, tensor] : named_parameters()) out.push_back(tensor);
  return out;
}

std::map<std::string, at::Tensor> PatchCritic::state() const {
  std::map<std::string, at::Tensor> out;
  for (size_t i = 0; i < layers_.size(); ++i) {
    const std::string prefix = std::to_string(i) + ".";
    out[prefix + "weight"] = layers_[i].weight.detach();
    out[prefix + "bias"] = layers_[i].bias.detach();
    if (layers_[i].u.defined()) {
      out[prefix + "u"] = layers_[i].u;
      out[prefix + "v"] = layers_[i].v;
    }
  }
  return out;
}

}  // namespace lethe::models
