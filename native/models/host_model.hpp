// A model the host application (ComfyUI) runs: any architecture it loads (SD1.x/2.x,
// SDXL, SD3, Flux, ...), which Lethe trains through callbacks without reimplementing it. The
// host gives its noise schedule (a DDPM alphas_cumprod table, or a flow-matching sigma table
// with its time shift applied) and predicts, for x_t = gamma_t x_0 + sigma_t eps at integer t,
// the output of its own parameterisation (eps, v, or the flow velocity eps - x_0). Lethe owns
// LoRA adapters (down/up per adapted weight) that the host attaches to its own layers. The
// core never sees Python: the bridge fills the callbacks (python_bridge/bind_host.cpp,
// nodes/host_model.py).
#pragma once

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "diffusion/schedule.hpp"
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
  std::string prediction_type = "epsilon";  // the model's output: epsilon | v_prediction | flow
  // [T] the model's own noise schedule: alphas_cumprod (epsilon, v_prediction), or the flow
  // sigmas s_t increasing in (0, 1] (flow).
  at::Tensor schedule_table;
  c10::Device device = c10::kCPU;  // where its weights live
  // The dtype the host computes in (float, bfloat16 or half): with half, training scales its
  // losses (core/loss_scaling.hpp), as a native fp16 run does.
  c10::ScalarType compute_dtype = c10::ScalarType::Float;
  diffusion::NoiseSchedule schedule;  // made from the two above by HostModel::info()
};

struct HostModel {
  std::string description = "host model";  // for messages ("ComfyUI MODEL (BaseModel)")
  std::function<HostModelInfo()> describe;
  // SHA-256 (hex) of the model's weights and weight patches as the host holds them: the
  // starting model of a run's identity (run_identity.hpp).
  std::function<std::string()> fingerprint;
  // SHA-256 (hex) of what the host attaches to these contexts besides the tensors themselves
  // (ComfyUI's CONDITIONING values: pooled output, guidance, image sizes), part of a run's
  // identity; empty or unset when it attaches nothing.
  std::function<std::string(const std::vector<at::Tensor>& contexts)> conditioning_sha256;
  // The model output [B, C, h, w] in info().prediction_type for x_t [B, C, h, w], t [B] (int64),
  // context [B, L, D]; `adapters`: with the attached adapters, or the base model alone (the
  // frozen reference).
  std::function<at::Tensor(const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& context, bool adapters)> predict;
  // Installs adapters on the host's layers; an empty list removes them. With
  // `gradient_checkpointing`, the host also recomputes its blocks' activations in backward
  // while the adapters are attached.
  std::function<void(const std::vector<HostAdapter>&, bool gradient_checkpointing)> attach;

  const HostModelInfo& info();

 private:
  std::optional<HostModelInfo> info_;
};

// The names of a host's compute dtype (HostModelInfo::compute_dtype) as describe() gives them and
// summary.json reports them: torch's, without "torch." (float32, bfloat16, float16). Any other
// name reads as float32: fp8 weights without a manual cast are cast up by the host.
c10::ScalarType host_compute_dtype(const std::string& name);
std::string host_compute_dtype_name(c10::ScalarType dtype);

// The LoRA target list that stands for the model family's own defaults (family_lora_targets).
inline constexpr const char* kFamilyLoraTargets = "auto";

// Default LoRA targets by the family the weight keys show: Flux (double_blocks/single_blocks):
// the image and text streams' attention qkv/proj and MLP linears, single blocks' linear1/linear2;
// SD3 MMDiT (joint_blocks): attn.qkv, attn.proj, mlp.fc1, mlp.fc2 of both streams; UNets (SD1.x/2.x,
// SDXL): LoraConfig's attention q/k/v/out and feed-forward.
std::vector<std::string> family_lora_targets(const std::vector<std::pair<std::string, std::vector<int64_t>>>& weights);

// LoRA adapters on a host model's linear weights whose module path (key without ".weight"
// and without the "diffusion_model." prefix) ends with one of the config's targets ("auto":
// family_lora_targets). Attached on construction, removed on destruction (so a failed run
// leaves the host model as it was).
class HostLora {
 public:
  HostLora(HostModel& model, const LoraConfig& config, uint64_t seed, bool gradient_checkpointing = false);
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
  at::Tensor predict(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning) override;
  std::string prediction_type() const override { return model_.info().prediction_type; }
  std::vector<at::Tensor> trainable_parameters() override;

 private:
  HostModel& model_;
  const HostLora* adapters_;
};

}  // namespace lethe::models
