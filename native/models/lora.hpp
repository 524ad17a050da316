// LoRA adapters on the native UNet: a low-rank update scale * up @ down on chosen linear
// (and 1x1/3x3 conv) layers, with the base weights untouched (and frozen). Adapters are
// named after the layer they patch ("<ldm module path>.lora_down.weight", ".lora_up.weight",
// ".alpha"), the key family ComfyUI's LoraLoader maps onto SD1.x UNets once prefixed.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>

#include "io/json_config.hpp"
#include "io/safetensors.hpp"

namespace lethe::models {

struct LoraConfig {
  int64_t rank = 4;
  double alpha = 4.0;  // scale = alpha / rank
  // A layer is adapted when its module path ends with one of these (LDM names). Default:
  // attention q/k/v/out and the feed-forward of every transformer block.
  std::vector<std::string> targets = {"attn1.to_q", "attn1.to_k", "attn1.to_v", "attn1.to_out.0",
                                      "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0",
                                      "ff.net.0.proj", "ff.net.2"};

  template <typename V>
  void visit(V& v) {
    v("rank", rank);
    v("alpha", alpha);
    v("targets", targets);
  }
  void validate(const std::string& where) const;
  // Whether a module path ends with one of the targets at a '.' boundary ("...attn2.to_k").
  bool matches(const std::string& module_path) const;
};

// Full-weight deltas scale * up.flatten(1) @ down.flatten(1) ([out, in] or [out, in*k*k]:
// reshape to a conv weight) of LoRA tensors "<module>.lora_down.weight" / ".lora_up.weight"
// with an optional "<module>.alpha" (scale alpha / rank, else 1), keyed "<module>.weight".
std::map<std::string, at::Tensor> lora_weight_deltas(const std::map<std::string, at::Tensor>& tensors,
                                                     const std::string& where);

class LoraSet {
 public:
  // Attaches adapters to every matching layer of `model`; errors when none matches.
  LoraSet(torch::nn::Module& model, const LoraConfig& config, uint64_t seed);
  ~LoraSet();
  LoraSet(const LoraSet&) = delete;
  LoraSet& operator=(const LoraSet&) = delete;

  // Trainable adapter tensors by name ("<path>.lora_down.weight", "<path>.lora_up.weight").
  std::vector<std::pair<std::string, at::Tensor>> parameters() const;
  // Adapter tensors plus "<path>.alpha" scalars, for saving.
  std::map<std::string, at::Tensor> tensors() const;
  // Loads adapters saved by tensors() (strict: every adapter present with its shape).
  void load(const std::map<std::string, at::Tensor>& tensors, const std::string& where);
  // Folds the adapters into the base weights and detaches them.
  void merge();
  // Detaches the adapters without changing the base weights.
  void detach();
  const LoraConfig& config() const { return config_; }
  size_t size() const;

 private:
  struct Layer;
  LoraConfig config_;
  std::vector<Layer> layers_;
};

}  // namespace lethe::models
