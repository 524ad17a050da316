// Nodes for Stable Diffusion models inside ComfyUI: a dataset from the host's LATENT
// (VAEEncode) and CONDITIONING (CLIPTextEncode), so Lethe never reimplements CLIP or the
// VAE; saving an unlearning run's LoRA where ComfyUI's LoraLoader finds it; and applying it
// to the host's MODEL for sampling with the usual KSampler.
#include <ATen/ATen.h>

#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "io/output_path.hpp"
#include "io/safetensors.hpp"
#include "models/lora.hpp"
#include "models/lora_kohya.hpp"

namespace lethe::graph::nodes {

namespace {

// CONDITIONING [N, L, D] for `count` examples: one entry each, or one shared by all.
at::Tensor conditioning_for(const NodeInputs& in, const std::string& name, int64_t count) {
  at::Tensor conditioning = in.value(name).as<at::Tensor>(in.where(name)).to(at::kFloat);  // [N, L, D]
  check(conditioning.dim() == 3 && (conditioning.size(0) == count || conditioning.size(0) == 1), in.where(name),
        ": expected CONDITIONING with 1 or ", count, " entries of [L, D] (one per latent, or one for all), got ",
        conditioning.sizes());
  return conditioning.contiguous();
}

// The LoRA input of a node: the run must have trained adapters.
const LoraResult& trained_lora(const NodeInputs& in) {
  const auto& lora = *in.object<LoraPtr>("lora");
  check(!lora.file.empty(), in.where("lora"),
        ": expected the LoRA of a run with trainable = lora, got a full-parameter run (no adapters)");
  return lora;
}

void register_dataset_from_latents() {
  NodeSchema schema;
  schema.name = "LetheDatasetFromLatents";
  schema.display_name = "Lethe Dataset from Latents";
  schema.category = "Lethe/data";
  schema.description =
      "Makes a dataset for a Stable Diffusion UNet from ComfyUI's own encoders: LATENT from VAEEncode (the images) and "
      "CONDITIONING from CLIPTextEncode (their prompts: one per image, or one for all). Give the empty prompt's "
      "CONDITIONING too when the retain set uses caption dropout. An optional MASK (image size) restricts forgetting "
      "to a region.";
  schema.inputs = {
      socket("samples", types::kLatent, "the images as VAE latents (VAEEncode)"),
      socket("conditioning", types::kConditioning, "their prompts (CLIPTextEncode; one per latent or one for all)"),
      float_input("latent_scale", 0.18215, 0.0001, 10.0, 0.00001,
                  "the model's latent scale factor (SD1.x/2.x 0.18215; SDXL 0.13025)"),
      socket("empty_conditioning", types::kConditioning,
             "the empty prompt's CONDITIONING (CLIPTextEncode of ''): what retain caption dropout trains", false),
      socket("mask", types::kMask, "optional spatial masks [B or 1, H, W] at image or latent size (1 = forget)", false)};
  schema.outputs = {{"dataset", types::kDataset, "the dataset (latents in the UNet's space, host conditioning)"}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    at::Tensor latents = in.value("samples").as<at::Tensor>(in.where("samples"));
    check(latents.dim() == 4 && latents.size(0) > 0, in.where("samples"), ": expected LATENT samples [B, C, h, w], got ",
          latents.sizes());
    const int64_t count = latents.size(0), height = latents.size(2), width = latents.size(3);
    unlearn::ExampleSet set;
    set.name = str("node ", context.node_id, " (LetheDatasetFromLatents)");
    set.images = (latents.to(at::kFloat) * in.number("latent_scale")).contiguous();  // [B, C, h, w]
    set.contexts = conditioning_for(in, "conditioning", count);
    if (in.has("empty_conditioning")) {
      set.empty_context = conditioning_for(in, "empty_conditioning", 1);
      check(set.empty_context.size(0) == 1, in.where("empty_conditioning"), ": expected one entry, got ",
            set.empty_context.size(0));
    }
    set.masks = at::ones({count, 1, height, width});
    if (in.has("mask")) {
      at::Tensor mask = in.value("mask").as<at::Tensor>(in.where("mask")).to(at::kFloat);
      if (mask.dim() == 2) mask = mask.unsqueeze(0);
      check(mask.dim() == 3 && (mask.size(0) == count || mask.size(0) == 1) && mask.size(1) % height == 0 &&
                mask.size(2) % width == 0 && mask.size(1) / height == mask.size(2) / width,
            in.where("mask"), ": expected MASK [", count, " or 1, H, W] at the latents' size ", height, "x", width,
            " or a whole multiple of it (the image size), got ", mask.sizes());
      // Image-size masks average over each latent cell: [B, 1, H, W] -> [B, 1, h, w].
      mask = at::adaptive_avg_pool2d(mask.unsqueeze(1), {height, width});
      set.masks = mask.expand({count, 1, height, width}).contiguous();
    }
    set.validate();
    context.texts.push_back(str(count, " latents ", latents.size(1), "x", height, "x", width, ", conditioning ",
                                set.contexts.size(1), "x", set.contexts.size(2)));
    return std::vector<Value>{dataset_value(set)};
  });
}

void register_save_lora() {
  NodeSchema schema;
  schema.name = "LetheSaveLoRA";
  schema.display_name = "Lethe Save LoRA";
  schema.category = "Lethe/models";
  schema.description = "Saves the LoRA of an unlearning run (trainable = lora) into ComfyUI's loras folder: kohya "
                       "form (lora_unet_..., lora_down/lora_up/alpha) for native SD runs, ComfyUI's own "
                       "(diffusion_model.<layer>.lora_down.weight, ...) for ComfyUI MODEL runs; under a new name each time, with its "
                       "provenance (objective, selections, steps, seed, base model hash). Load it with LoraLoader.";
  schema.output_node = true;
  schema.inputs = {socket("lora", types::kLora, "the LoRA output of Lethe Unlearn"),
                   string_input("filename_prefix", "lethe/unlearned", "file name prefix (a folder part is allowed)")};
  schema.outputs = {{"lora_name", "STRING", "the file's name inside the loras folder (LoraLoader's lora_name)"}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    const LoraResult& lora = trained_lora(in);
    auto found = context.folders.find("loras");
    const std::filesystem::path folder =
        found != context.folders.end() ? found->second : context.run_directory / "loras";
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
    return std::vector<Value>{json_value("STRING", name)};
  });
}

// Full-weight deltas of a kohya LoRA for a UNet of `config`: scale * up @ down per adapted
// weight, keyed "diffusion_model.<ldm path>.weight" (ComfyUI's SD1.x model state-dict keys).
std::map<std::string, at::Tensor> kohya_lora_deltas(const LoraResult& lora, const std::string& where) {
  const models::ShapeTable shapes = models::unet_shape_table(lora.unet_config);
  std::vector<std::string> paths;
  for (const auto& [key, shape] : shapes)
    if (shape.size() >= 2 && key.size() > 7 && key.compare(key.size() - 7, 7, ".weight") == 0)
      paths.push_back(key.substr(0, key.size() - 7));
  io::SafetensorsFile file = io::SafetensorsFile::open(lora.file);
  std::map<std::string, at::Tensor> deltas;
  for (auto& [key, delta] : models::lora_weight_deltas(models::from_kohya(file.tensors(), lora.unet_config, paths, where), where))
    deltas["diffusion_model." + key] = delta.reshape(shapes.at(key));  // [out, in, ...]
  return deltas;
}

void register_apply_lora() {
  NodeSchema schema;
  schema.name = "LetheApplyLoRA";
  schema.display_name = "Lethe Apply LoRA";
  schema.category = "Lethe/models";
  schema.description = "Applies an unlearning run's LoRA to ComfyUI's MODEL (the checkpoint it was trained from) and "
                       "returns the patched MODEL, for sampling right away with KSampler. ComfyUI only.";
  schema.inputs = {socket("model", types::kHostModel, "the MODEL of the checkpoint the LoRA was trained on"),
                   socket("lora", types::kLora, "the LoRA output of Lethe Unlearn"),
                   float_input("strength", 1.0, -10.0, 10.0, 0.01, "LoRA strength (1 = as trained)")};
  schema.outputs = {{"model", types::kHostModel, "the patched MODEL"}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    const LoraResult& lora = trained_lora(in);
    auto patches = std::make_shared<ModelPatches>();
    patches->deltas = lora.format == "comfy"
                          ? models::lora_weight_deltas(io::SafetensorsFile::open(lora.file).tensors(), in.where("lora"))
                          : kohya_lora_deltas(lora, in.where("lora"));
    patches->strength = in.number("strength");
    context.texts.push_back(str(patches->deltas.size(), " weights patched"));
    return std::vector<Value>{Value(types::kHostModel, patches)};
  });
}

}  // namespace

void register_host_nodes() {
  register_dataset_from_latents();
  register_save_lora();
  register_apply_lora();
}

}  // namespace lethe::graph::nodes
