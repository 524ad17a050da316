// Small helpers shared by the node functions: ComfyUI layout conversions, and the Lethe
// object types that travel between nodes.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "graph/node_registry.hpp"
#include "models/conditioning.hpp"
#include "models/unet_config.hpp"
#include "unlearn/example_set.hpp"

namespace lethe::graph::nodes {

// ComfyUI IMAGE [B, H, W, 3] <-> Lethe pixels [B, C, H, W] in [0, 1]. Grayscale is repeated
// to 3 channels on the way out and converted to luma on the way in when `channels` is 1.
at::Tensor to_comfy_image(const at::Tensor& pixels);
at::Tensor from_comfy_image(const at::Tensor& image, int64_t channels, const std::string& where);

// An objective chosen by an objective node: a registry name and its config.
struct ObjectiveSpec {
  std::string name;
  nlohmann::json config;
};

// Datasets travel as shared pointers (they can be large); an empty one has no images.
using DatasetPtr = std::shared_ptr<unlearn::ExampleSet>;
Value dataset_value(unlearn::ExampleSet set);

// The LoRA of an unlearning run: its adapter file in the run folder (empty for a full-
// parameter run), the configuration of the native UNet it adapts, and its key form: "kohya"
// (lora_unet_<diffusers path>, native SD runs) or "comfy" (<state-dict key>.lora_down.weight,
// host-model runs; any architecture ComfyUI loads).
struct LoraResult {
  std::filesystem::path file;
  models::UNetConfig unet_config;
  std::string format = "kohya";
};
using LoraPtr = std::shared_ptr<LoraResult>;

// Weight patches for a host (ComfyUI) MODEL: full-weight deltas by state-dict key
// ("diffusion_model.<ldm path>.weight"), applied by the pack with ModelPatcher.add_patches.
struct ModelPatches {
  std::map<std::string, at::Tensor> deltas;
  double strength = 1.0;
};
Value image_value(const at::Tensor& pixels);  // pixels [B, C, H, W] -> IMAGE
// Pixels per latent cell as ComfyUI's samplers count them (encode_model_conds: width and
// height = latent x 8), for SDXL's default size conditioning.
inline constexpr double kPixelsPerLatent = 8.0;
// A CONDITIONING input as float32: context [N, L, D], with pooled output and sizes when the
// prompts carry them (sizes completed for images of height x width pixels). Errors name the input.
models::Conditioning host_conditioning(const NodeInputs& in, const std::string& name, double height, double width);
Value json_value(const std::string& type, nlohmann::json value);

}  // namespace lethe::graph::nodes
