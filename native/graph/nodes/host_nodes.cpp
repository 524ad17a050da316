// Nodes for Stable Diffusion models inside ComfyUI: a dataset from the host's LATENT
// (VAEEncode) and CONDITIONING (CLIPTextEncode), so Lethe never reimplements CLIP or the
// VAE; saving an unlearning run's LoRA where ComfyUI's LoraLoader finds it; and applying it
// to the host's MODEL for sampling with the usual KSampler. LoRA math: models/lora*.
#include <ATen/ATen.h>

#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "io/output_path.hpp"
#include "io/safetensors.hpp"
#include "models/lora.hpp"
#include "models/lora_kohya.hpp"

namespace lethe::graph::nodes {

namespace {

// CONDITIONING (N rows) for `count` examples of height x width pixels: one entry each, or one
// shared by all.
models::Conditioning conditioning_for(const NodeInputs& in, const std::string& name, int64_t count, double height,
                                      double width) {
  models::Conditioning conditioning = host_conditioning(in, name, height, width);
  check(conditioning.size() == count || conditioning.size() == 1, in.where(name), ": expected CONDITIONING with 1 or ",
        count, " entries of [L, D] (one per latent, or one for all), got ", conditioning.context.sizes());
  return conditioning;
}

// The LoRA input of a node: the run must have trained adapters.
const LoraResult& trained_lora(const NodeInputs& in) {
  const auto& lora = *in.object<LoraPtr>("lora");
  check(!lora.file.empty(), in.where("lora"),
        ": expected the LoRA of a run with trainable = lora, got a full-parameter run (no adapters)");
  return lora;
}

std::vector<Value> dataset_from_latents(NodeContext& context, const NodeInputs& in) {
  const at::Tensor& latents = in.object<at::Tensor>("samples");
  check(latents.dim() == 4 && latents.size(0) > 0, in.where("samples"), ": expected LATENT samples [B, C, h, w], got ",
        latents.sizes());
  const int64_t count = latents.size(0), height = latents.size(2), width = latents.size(3);
  unlearn::ExampleSet set;
  set.name = str("node ", context.node_id, " (LetheDatasetFromLatents)");
  // The model's own latent space (ComfyUI's process_latent_in): (latent - shift) * scale.
  const double shift = in.has("latent_shift") ? in.number("latent_shift") : 0.0;
  set.images = ((latents.to(at::kFloat) - shift) * in.number("latent_scale")).contiguous();  // [B, C, h, w]
  // ComfyUI's samplers give SDXL the latent's size in pixels unless the prompt says otherwise.
  const double pixel_height = kPixelsPerLatent * static_cast<double>(height), pixel_width = kPixelsPerLatent * static_cast<double>(width);
  set.conditioning = conditioning_for(in, "conditioning", count, pixel_height, pixel_width);
  if (in.has("empty_conditioning")) {
    set.empty_conditioning = conditioning_for(in, "empty_conditioning", 1, pixel_height, pixel_width);
    check(set.empty_conditioning.size() == 1, in.where("empty_conditioning"), ": expected one entry, got ",
          set.empty_conditioning.size());
  }
  set.masks = in.has("mask") ? unlearn::spatial_masks(in.object<at::Tensor>("mask"), count, height, width, in.where("mask"))
                             : at::ones({count, 1, height, width});
  set.validate();
  const at::Tensor& contexts = set.conditioning.context;
  context.texts.push_back(str(count, " latents ", latents.size(1), "x", height, "x", width, ", conditioning ",
                              contexts.size(1), "x", contexts.size(2),
                              set.conditioning.has_vector() ? str(", pooled ", set.conditioning.pooled.size(1)) : ""));
  return {dataset_value(set)};
}

std::vector<Value> save_lora(NodeContext& context, const NodeInputs& in) {
  const LoraResult& lora = trained_lora(in);
  if (!context.writes_files()) return {json_value("STRING", std::string())};  // rank 0 saves it
  auto found = context.folders.find("loras");
  const std::filesystem::path folder = found != context.folders.end() ? found->second : context.run_directory / "loras";
  // Rewritten (not copied) so the saved file is complete or absent, never partial.
  io::SafetensorsFile source = io::SafetensorsFile::open(lora.file);
  const std::filesystem::path path =
      io::write_numbered_file(folder, in.text("filename_prefix"), ".safetensors", in.where("filename_prefix"),
                              [&](const std::filesystem::path& file) {
                                io::save_safetensors(file, source.tensors(), source.metadata(), io::WriteMode::exclusive);
                              });
  const std::string name = std::filesystem::relative(path, folder).generic_string();
  context.files.push_back(path);
  context.texts.push_back("saved " + name);
  return {json_value("STRING", name)};
}

std::vector<Value> apply_lora(NodeContext& context, const NodeInputs& in) {
  const LoraResult& lora = trained_lora(in);
  auto patches = std::make_shared<ModelPatches>();
  patches->deltas = lora.format == "comfy"
                        ? models::lora_weight_deltas(io::SafetensorsFile::open(lora.file).tensors(), in.where("lora"))
                        : models::kohya_file_weight_deltas(lora.file, lora.unet_config, in.where("lora"));
  patches->strength = in.number("strength");
  context.texts.push_back(str(patches->deltas.size(), " weights patched"));
  return {Value(types::kHostModel, patches)};
}

}  // namespace

void register_host_nodes() {
  register_table_node("LetheDatasetFromLatents", dataset_from_latents);
  register_table_node("LetheSaveLoRA", save_lora);
  register_table_node("LetheApplyLoRA", apply_lora);
}

}  // namespace lethe::graph::nodes
