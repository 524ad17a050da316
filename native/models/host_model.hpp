// A model the host application (ComfyUI) runs: any architecture it loads (SD1.x/2.x,
// SDXL, ...), which Lethe trains through callbacks without reimplementing it. The host
// predicts eps for DDPM x_t at integer t; Lethe owns LoRA adapters (down/up per adapted
// weight) that the host attaches to its own layers. The core never sees Python: the bridge
// fills the callbacks (python_bridge/bind_graph.cpp, nodes/host_model.py).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "models/denoiser.hpp"
#include "models/lora.hpp"

namespace lethe::models {

// One adapter the host adds to the layer owning weight `key`: y += scale * up(down(x)).
struct HostAdapter {
  std::string key;   // the host's state-dict key of the adapted weight ("diffusion_model.<path>.weight")
  at::Tensor down;   // [rank, in]
  at::Tensor up;     // [out, rank]
  double scale = 1.0;
};

// What the host says about its model (asked once, when first needed).
struct HostModelInfo {
  std::vector<std::pair<std::string, std::vector<int64_t>>> weights;  // linear weights by state-dict key, [out, in]
  at::Tensor alphas_cumprod;                                          // [T] the model's own noise schedule
  c10::Device device = c10::kCPU;                                     // where its weights live
};

struct HostModel {
  std::string description = "host model";  // for messages ("ComfyUI MODEL (BaseModel)")
  std::function<HostModelInfo()> describe;
  // SHA-256 (hex) of the model's weights and weight patches as the host holds them: the
  // starting model of a run's identity (run_identity.hpp).
  std::function<std::string()> fingerprint;
  // eps [B, C, h, w] for x_t [B, C, h, w], t [B] (int64), context [B, L, D]; `adapters`: with
  // the attached adapters, or the base model alone (the frozen reference).
  std::function<at::Tensor(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& context, bool adapters)> predict;
  // Installs adapters on the host's layers; an empty list removes them.
  std::function<void(const std::vector<HostAdapter>&)> attach;

  const HostModelInfo& info();

 private:
  std::optional<HostModelInfo> info_;
};

// LoRA adapters on a host model's linear weights whose module path (key without ".weight"
// and without the "diffusion_model." prefix) ends with one of the config's targets. Attached
// on construction, removed on destruction (so a failed run leaves the host model as it was).
class HostLora {
 public:
  HostLora(HostModel& model, const LoraConfig& config, uint64_t seed);
  ~HostLora();
  HostLora(const HostLora&) = delete;
  HostLora& operator=(const HostLora&) = delete;

  // Trainable tensors by name ("<module>.lora_down.weight", "<module>.lora_up.weight").
  std::vector<std::pair<std::string, at::Tensor>> parameters() const;
  // For saving, in ComfyUI's own LoRA key form: "<module>.lora_down.weight",
  // ".lora_up.weight", ".alpha" with <module> = the weight key without ".weight"
  // (lora_weight_deltas turns them into deltas keyed by the weight key).
  std::map<std::string, at::Tensor> tensors() const;
  size_t size() const { return adapters_.size(); }

 private:
  HostModel& model_;
  LoraConfig config_;
  std::vector<HostAdapter> adapters_;
};

// The host model as a Denoiser: with its adapters (trainable), or without (the frozen reference).
class HostDenoiser : public Denoiser {
 public:
  HostDenoiser(HostModel& model, const HostLora* adapters) : model_(model), adapters_(adapters) {}
  at::Tensor predict(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& context) override;
  std::vector<at::Tensor> trainable_parameters() override;

 private:
  HostModel& model_;
  const HostLora* adapters_;
};

}  // namespace lethe::models
