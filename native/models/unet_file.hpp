// Loading the UNet of a .safetensors checkpoint into the native UNet: the UNet's keys are
// found under "model.diffusion_model." (SD checkpoints), "diffusion_model." (Lethe and
// ComfyUI UNet files) or at the top level; the config is detected from the weights (with
// the hints Lethe's own files carry in their metadata), and loading is strict.
#pragma once

#include <filesystem>
#include <string>

#include "io/safetensors.hpp"
#include "models/unet.hpp"

namespace lethe::models {

struct LoadedUNet {
  UNet unet{nullptr};
  std::string prefix;      // where the UNet keys were found
  io::Metadata metadata;   // the file's metadata
};

// Metadata key under which Lethe stores the full UNet config as JSON.
inline constexpr const char* kUNetConfigMetadataKey = "lethe.unet_config";

// The UNet key prefix used in `file` ("model.diffusion_model.", "diffusion_model." or "").
std::string find_unet_prefix(const io::SafetensorsFile& file);

// Detects the UNet config of `file` from its shape table, without reading tensor data.
// Hints stored in the file's metadata (kUNetConfigMetadataKey) override `hints`, and that
// stored config must agree with the weights.
UNetConfig detect_unet_config(const io::SafetensorsFile& file, UNetHints hints = {});

// Detects the config and loads strictly.
LoadedUNet load_unet(const std::filesystem::path& path, UNetHints hints = {},
                     const at::TensorOptions& options = at::TensorOptions().dtype(at::kFloat));

}  // namespace lethe::models
