#include "models/host_model.hpp"

#include <cmath>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"

namespace lethe::models {

namespace {

std::string strip_suffix(const std::string& text, const std::string& suffix) {
  const bool has = text.size() > suffix.size() && text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
  return has ? text.substr(0, text.size() - suffix.size()) : text;
}

}  // namespace

const HostModelInfo& HostModel::info() {
  if (!info_) {
    check(static_cast<bool>(describe), description, ": the host gave no model description");
    HostModelInfo info = describe();
    check(info.alphas_cumprod.defined() && info.alphas_cumprod.dim() == 1 && info.alphas_cumprod.size(0) >= 2,
          description, ": expected the noise schedule as alphas_cumprod [T], got ",
          info.alphas_cumprod.defined() ? info.alphas_cumprod.sizes() : at::IntArrayRef{});
    info.alphas_cumprod = info.alphas_cumprod.to(at::kCPU, at::kFloat).contiguous();
    const double first = info.alphas_cumprod[0].item<double>(), last = info.alphas_cumprod[-1].item<double>();
    check(first < 1.0 && last > 0.0 && first > last, description,
          ": expected alphas_cumprod decreasing inside (0, 1), got ", first, " .. ", last);
    info_ = std::move(info);
  }
  return *info_;
}

HostLora::HostLora(HostModel& model, const LoraConfig& config, uint64_t seed) : model_(model), config_(config) {
  config_.validate("LoRA");
  check(static_cast<bool>(model.attach), model.description, ": the host cannot attach adapters");
  const HostModelInfo& info = model.info();
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  for (const auto& [key, shape] : info.weights) {
    const std::string module = strip_suffix(key, ".weight");
    if (!config_.matches(module) || shape.size() != 2) continue;
    const int64_t out = shape[0], in = shape[1], rank = config_.rank;
    HostAdapter adapter;
    adapter.key = key;
    adapter.scale = config_.alpha / static_cast<double>(rank);
    adapter.down = at::empty({rank, in}, at::kFloat);  // [rank, in], uniform as the native LoRA and peft
    {
      at::NoGradGuard no_grad;
      adapter.down.uniform_(-1.0 / std::sqrt(static_cast<double>(in)), 1.0 / std::sqrt(static_cast<double>(in)),
                            generator);
    }
    adapter.down = adapter.down.to(info.device).requires_grad_(true);
    adapter.up = at::zeros({out, rank}, at::TensorOptions(at::kFloat).device(info.device)).requires_grad_(true);
    adapters_.push_back(std::move(adapter));
  }
  if (adapters_.empty()) {
    std::vector<std::string> examples;
    int64_t linear = 0;
    for (const auto& [key, shape] : info.weights) {
      if (shape.size() != 2) continue;
      ++linear;
      if (examples.size() < 4) examples.push_back(strip_suffix(key, ".weight"));
    }
    throw Error(str("LoRA: no linear layer of ", model.description, " matches the targets ", join(config_.targets),
                    " (", linear, " linear weights, e.g. ", join(examples), ")"));
  }
  model_.attach(adapters_);
}

HostLora::~HostLora() {
  try {
    model_.attach({});
  } catch (...) {  // a destructor must not throw; the host's error was already reported by the run
  }
}

std::vector<std::pair<std::string, at::Tensor>> HostLora::parameters() const {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const HostAdapter& adapter : adapters_) {
    const std::string module = strip_suffix(adapter.key, ".weight");
    out.emplace_back(module + ".lora_down.weight", adapter.down);
    out.emplace_back(module + ".lora_up.weight", adapter.up);
  }
  return out;
}

std::map<std::string, at::Tensor> HostLora::tensors() const {
  std::map<std::string, at::Tensor> out;
  for (const auto& [name, tensor] : parameters()) out[name] = tensor.detach().to(at::kCPU).contiguous();
  for (const HostAdapter& adapter : adapters_)
    out[strip_suffix(adapter.key, ".weight") + ".alpha"] = at::tensor(static_cast<float>(config_.alpha));
  return out;
}

at::Tensor HostDenoiser::predict(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& context) {
  at::Tensor eps = model_.predict(x_t, t, context, adapters_ != nullptr);
  check(eps.defined() && eps.sizes() == x_t.sizes(), model_.description, ": expected a prediction shaped like x_t ",
        x_t.sizes(), ", got ", eps.defined() ? eps.sizes() : at::IntArrayRef{});
  return eps;
}

std::vector<at::Tensor> HostDenoiser::trainable_parameters() {
  std::vector<at::Tensor> out;
  if (adapters_ != nullptr)
    for (const auto& [name, tensor] : adapters_->parameters()) out.push_back(tensor);
  return out;
}

}  // namespace lethe::models
