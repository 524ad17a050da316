#include "models/lora.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "models/layers.hpp"
#include "models/unet_config.hpp"

namespace lethe::models {

namespace {

bool ends_with(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

void LoraConfig::validate(const std::string& where) const {
  check(rank >= 1, where, ".rank: expected >= 1, got ", rank);
  check(alpha > 0, where, ".alpha: expected > 0, got ", alpha);
  check(!targets.empty(), where, ".targets: expected at least one layer pattern");
}

bool LoraConfig::matches(const std::string& module_path) const {
  for (const auto& target : targets)
    if (ends_with(module_path, target) &&
        (module_path.size() == target.size() || module_path[module_path.size() - target.size() - 1] == '.'))
      return true;
  return false;
}

std::map<std::string, at::Tensor> lora_weight_deltas(const std::map<std::string, at::Tensor>& tensors,
                                                     const std::string& where) {
  const std::string suffix = ".lora_down.weight";
  std::map<std::string, at::Tensor> deltas;
  for (const auto& [name, down] : tensors) {
    if (name.size() <= suffix.size() || !ends_with(name, suffix)) continue;
    const std::string module = name.substr(0, name.size() - suffix.size());
    auto up = tensors.find(module + ".lora_up.weight");
    check(up != tensors.end(), where, ": '", name, "' has no matching '", module, ".lora_up.weight'");
    check(down.dim() >= 2 && up->second.dim() == down.dim() && up->second.size(1) == down.size(0), where,
          ": expected '", module, "' lora_up [out, r] and lora_down [r, in], got ", up->second.sizes(), " and ",
          down.sizes());
    auto alpha = tensors.find(module + ".alpha");
    const double scale = alpha != tensors.end() ? alpha->second.item<double>() / static_cast<double>(down.size(0)) : 1.0;
    deltas[module + ".weight"] = low_rank_delta(up->second.to(at::kFloat), down.to(at::kFloat), scale);  // [out, in(*k*k)]
  }
  check(!deltas.empty(), where, ": expected LoRA tensors '<module>.lora_down.weight' / '.lora_up.weight', found none");
  return deltas;
}

struct LoraSet::Layer {
  std::string path;
  LinearLayerImpl* linear = nullptr;
  Conv2dLayerImpl* conv = nullptr;
  std::shared_ptr<LowRankAdapter> adapter;
};

LoraSet::LoraSet(torch::nn::Module& model, const LoraConfig& config, uint64_t seed) : config_(config) {
  config_.validate("LoRA");
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& item : model.named_modules()) {
    const std::string& path = item.key();
    if (!config_.matches(path)) continue;
    Layer layer;
    layer.path = path;
    at::Tensor weight;
    if (auto* linear = dynamic_cast<LinearLayerImpl*>(item.value().get())) {
      layer.linear = linear;
      weight = linear->weight;
    } else if (auto* conv = dynamic_cast<Conv2dLayerImpl*>(item.value().get())) {
      layer.conv = conv;
      weight = conv->weight;
    } else {
      continue;  // a container whose name matches; its layers are matched on their own paths
    }
    check(!(layer.linear ? layer.linear->adapter : layer.conv->adapter), "LoRA: layer '", path, "' already has an adapter");
    const auto options = weight.options().dtype(at::kFloat);
    const int64_t out = weight.size(0), in = weight.size(1), rank = config_.rank;
    auto adapter = std::make_shared<LowRankAdapter>();
    adapter->scale = config_.alpha / static_cast<double>(rank);
    const double fan_in = static_cast<double>(weight.numel() / out);
    if (layer.linear) {
      adapter->down = at::empty({rank, in}, options);
      adapter->up = at::zeros({out, rank}, options);
    } else {
      adapter->down = at::empty({rank, in, weight.size(2), weight.size(3)}, options);
      adapter->up = at::zeros({out, rank, 1, 1}, options);
    }
    {
      at::NoGradGuard no_grad;  // drawn on the CPU (the generator's device), then placed beside the weight
      at::Tensor drawn = at::empty(adapter->down.sizes(), at::kFloat);
      drawn.uniform_(-1.0 / std::sqrt(fan_in), 1.0 / std::sqrt(fan_in), generator);
      adapter->down = drawn.to(options);
    }
    adapter->down.requires_grad_(true);
    adapter->up.requires_grad_(true);
    layer.adapter = adapter;
    (layer.linear ? layer.linear->adapter : layer.conv->adapter) = adapter;
    layers_.push_back(layer);
  }
  check(!layers_.empty(), "LoRA: no layer matches the targets ", join(config_.targets),
        " (targets are suffixes of LDM module paths such as 'attn2.to_k')");
}

LoraSet::~LoraSet() = default;

size_t LoraSet::size() const { return layers_.size(); }

std::vector<std::pair<std::string, at::Tensor>> LoraSet::parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const Layer& layer : layers_) {
    out.emplace_back(layer.path + ".lora_down.weight", layer.adapter->down);
    out.emplace_back(layer.path + ".lora_up.weight", layer.adapter->up);
  }
  return out;
}

std::map<std::string, at::Tensor> LoraSet::tensors() const {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, tensor] : parameters()) out[name] = tensor.detach();
  for (const Layer& layer : layers_) out[layer.path + ".alpha"] = at::tensor(static_cast<float>(config_.alpha));
  return out;
}

void LoraSet::load(const std::map<std::string, at::Tensor>& tensors, const std::string& where) {
  ShapeTable expected, got;
  for (const auto& [name, tensor] : this->tensors()) expected[name] = tensor.sizes().vec();
  for (const auto& [name, tensor] : tensors) got[name] = tensor.sizes().vec();
  check_shape_table(expected, got, where);
  at::NoGradGuard no_grad;
  for (const Layer& layer : layers_) {
    layer.adapter->down.copy_(tensors.at(layer.path + ".lora_down.weight"));
    layer.adapter->up.copy_(tensors.at(layer.path + ".lora_up.weight"));
    const double alpha = tensors.at(layer.path + ".alpha").item<double>();
    layer.adapter->scale = alpha / static_cast<double>(layer.adapter->rank());
  }
}

void LoraSet::merge() {
  at::NoGradGuard no_grad;
  for (Layer& layer : layers_) {
    at::Tensor& weight = layer.linear ? layer.linear->weight : layer.conv->weight;
    const at::Tensor delta = low_rank_delta(layer.adapter->up, layer.adapter->down, layer.adapter->scale);
    // Out of place: the weight's storage may be shared with the run's input model (frozen_copy).
    weight.set_data(weight + delta.reshape(weight.sizes()).to(weight.scalar_type()));
  }
  detach();
}

void LoraSet::detach() {
  for (Layer& layer : layers_) (layer.linear ? layer.linear->adapter : layer.conv->adapter).reset();
}

}  // namespace lethe::models
