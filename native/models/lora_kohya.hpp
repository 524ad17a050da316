// LoRA files in the kohya format for SD1.x/2.x-layout UNets: adapter keys named
// "lora_unet_<diffusers module path with '.' -> '_'>" + ".lora_down.weight" /
// ".lora_up.weight" / ".alpha". ComfyUI's LoraLoader (via comfy.utils.unet_to_diffusers),
// A1111 and kohya's scripts all load this form (docs/comfyui-contract.md §7).
// Lethe's own adapter names are LDM module paths; this maps between the two.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/unet_config.hpp"

namespace lethe::models {

// The diffusers module path of an LDM-layout UNet module path (without "diffusion_model."),
// e.g. "input_blocks.1.1.transformer_blocks.0.attn1.to_q" ->
// "down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q". Throws naming the path when
// it is not part of a UNet of this configuration.
std::string diffusers_module_path(const std::string& ldm_path, const UNetConfig& config);

// "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
std::string kohya_module_name(const std::string& ldm_path, const UNetConfig& config);

// Lethe adapter tensors ("<ldm path>.lora_down.weight" / ".lora_up.weight" / ".alpha") ->
// kohya-named tensors (same values).
std::map<std::string, at::Tensor> to_kohya(const std::map<std::string, at::Tensor>& tensors, const UNetConfig& config);

// The inverse for the adapters at `ldm_paths`: kohya-named tensors -> Lethe names. Keys it
// cannot place are an error that names them.
std::map<std::string, at::Tensor> from_kohya(const std::map<std::string, at::Tensor>& tensors, const UNetConfig& config,
                                             const std::vector<std::string>& ldm_paths, const std::string& where);

// Full-weight deltas (scale * up @ down, each in its weight's shape) of a kohya LoRA file for a
// UNet of `config`, keyed "diffusion_model.<ldm path>.weight" (ComfyUI's SD1.x/2.x model
// state-dict keys, what ModelPatcher.add_patches takes). Errors name `where`.
std::map<std::string, at::Tensor> kohya_file_weight_deltas(const std::filesystem::path& file, const UNetConfig& config,
                                                           const std::string& where);

}  // namespace lethe::models
