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

std::vector<std::string> family_lora_targets(const std::vector<std::pair<std::string, std::vector<int64_t>>>& weights) {
  auto has = [&](const std::string& part) {
    for (const auto& [key, shape] : weights)
      if (key.find(part) != std::string::npos) return true;
    return false;
  };
  if (has(".double_blocks.") || has(".single_blocks."))
    return {"img_attn.qkv", "img_attn.proj", "txt_attn.qkv", "txt_attn.proj", "img_mlp.0", "img_mlp.2",
            "txt_mlp.0",    "txt_mlp.2",     "linear1",      "linear2"};
  if (has(".joint_blocks.")) return {"attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"};
  return LoraConfig{}.targets;
}

const HostModelInfo& HostModel::info() {
  if (!info_) {
    check(static_cast<bool>(describe), description, ": the host gave no model description");
    HostModelInfo info = describe();
    const bool flow = info.prediction_type == "flow";
    check(flow || info.prediction_type == "epsilon" || info.prediction_type == "v_prediction", description,
          ": expected the prediction type epsilon, v_prediction or flow, got '", info.prediction_type, "'");
    const char* table = flow ? "the flow sigmas" : "alphas_cumprod";
    at::Tensor& values = info.schedule_table;
    check(values.defined() && values.dim() == 1 && values.size(0) >= 2, description, ": expected the noise schedule as ",
          table, " [T], got ", values.defined() ? values.sizes() : at::IntArrayRef{});
    values = values.to(at::kCPU, at::kFloat).contiguous();
    const double first = values[0].item<double>(), last = values[-1].item<double>();
    if (flow) {
      check(first > 0.0 && last <= 1.0 && first < last, description,
            ": expected the flow sigmas increasing inside (0, 1], got ", first, " .. ", last);
      info.schedule = diffusion::NoiseSchedule::from_flow_sigmas(values);
    } else {
      check(first < 1.0 && last > 0.0 && first > last, description,
            ": expected alphas_cumprod decreasing inside (0, 1), got ", first, " .. ", last);
      info.schedule = diffusion::NoiseSchedule::from_alphas_cumprod(values, info.prediction_type);
    }
    info_ = std::move(info);
  }
  return *info_;
}

HostLora::HostLora(HostModel& model, const LoraConfig& config, uint64_t seed, bool gradient_checkpointing)
    : model_(model), config_(config) {
  config_.validate("LoRA");
  check(static_cast<bool>(model.attach), model.description, ": the host cannot attach adapters");
  const HostModelInfo& info = model.info();
  if (config_.targets == std::vector<std::string>{kFamilyLoraTargets}) config_.targets = family_lora_targets(info.weights);
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
  model_.attach(adapters_, gradient_checkpointing);
}

HostLora::~HostLora() {
  try {
    model_.attach({}, false);
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

at::Tensor HostDenoiser::predict(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning) {
  // The host makes its model's other inputs (SDXL's y, Flux's guidance, ...) itself, from the
  // CONDITIONING values it attached to each context row: pooled and sizes are not passed.
  at::Tensor eps = model_.predict(x_t, t, conditioning.context, adapters_ != nullptr);
  check(eps.defined() && eps.sizes() == x_t.sizes(), model_.description, ": expected a prediction shaped like x_t ",
        x_t.sizes(), ", got ", eps.defined() ? eps.sizes() : at::IntArrayRef{});
  return eps;
}

c10::ScalarType host_compute_dtype(const std::string& name) {
  if (name == "float16") return at::kHalf;
  if (name == "bfloat16") return at::kBFloat16;
  return at::kFloat;
}

std::string host_compute_dtype_name(c10::ScalarType dtype) {
  return dtype == at::kHalf ? "float16" : dtype == at::kBFloat16 ? "bfloat16" : "float32";
}

std::vector<at::Tensor> HostDenoiser::trainable_parameters() {
  std::vector<at::Tensor> out;
  if (adapters_ != nullptr)
    for (const auto& [name, tensor] : adapters_->parameters()) out.push_back(tensor);
  return out;
}

}  // namespace lethe::models
