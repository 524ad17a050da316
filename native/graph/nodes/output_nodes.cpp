// Output nodes: saving a model, and headless stand-ins for ComfyUI's PreviewImage and
// SaveImage so workflows that use ComfyUI's own nodes run with `lethe run` too.
#include <ATen/ATen.h>

#include "data/image.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "io/output_path.hpp"
#include "models/diffusion_model.hpp"

namespace lethe::graph::nodes {

namespace {

// Writes each image as <prefix>_NNNNN_.png with the next free number (as ComfyUI's SaveImage
// names them), inside the run folder.
std::vector<Value> save_images(NodeContext& context, const NodeInputs& in, const std::string& prefix,
                               const std::string& where) {
  const at::Tensor& images = in.value("images").as<at::Tensor>(in.where("images"));
  check(images.dim() == 4, in.where("images"), ": expected IMAGE [B, H, W, C], got ", images.sizes());
  for (int64_t i = 0; i < images.size(0); ++i) {
    const auto path = io::write_numbered_file(context.run_directory, prefix, ".png", where, [&](const std::filesystem::path& file) {
      data::write_png(file, images[i].permute({2, 0, 1}), io::WriteMode::exclusive);
    });
    context.files.push_back(path);
  }
  context.previews.emplace_back(std::filesystem::path(prefix).filename().string(), images);
  return {};
}

}  // namespace

void register_output_nodes() {
  NodeSchema save;
  save.name = "LetheSaveModel";
  save.display_name = "Lethe Save Model";
  save.category = "Lethe/models";
  save.description = "Saves the model as .safetensors (with its provenance: objective, selections, steps, seed, source "
                     "model hash) into the output folder, under a new name each time.";
  save.output_node = true;
  save.inputs = {socket("model", types::kModel, "the model to save"),
                 string_input("filename_prefix", "lethe/unlearned", "file name prefix (a folder part is allowed)")};
  save.outputs = {};
  register_node(save, [](NodeContext& context, const NodeInputs& in) {
    auto model = in.object<std::shared_ptr<models::DiffusionModel>>("model");
    io::Metadata metadata = model->source_metadata;
    for (const auto& key : {"lethe.format", "lethe.unet_config", "lethe.text_encoder_config", "lethe.schedule"})
      metadata.erase(key);
    const std::filesystem::path path = io::write_numbered_file(
        context.run_directory, in.text("filename_prefix"), ".safetensors", in.where("filename_prefix"),
        [&](const std::filesystem::path& file) { model->save(file, metadata, io::WriteMode::exclusive); });
    context.files.push_back(path);
    context.texts.push_back("saved " + path.filename().string());
    return std::vector<Value>{};
  });

  NodeSchema preview;
  preview.name = "PreviewImage";
  preview.display_name = "Preview Image (headless)";
  preview.category = "Lethe/headless";
  preview.description = "Headless stand-in for ComfyUI's PreviewImage: writes the images into the run folder.";
  preview.output_node = true;
  preview.headless_only = true;
  preview.inputs = {socket("images", types::kImage, "images")};
  register_node(preview, [](NodeContext& context, const NodeInputs& in) {
    return save_images(context, in, "preview-node-" + io::file_name_part(context.node_id), in.where("images"));
  });

  NodeSchema save_image;
  save_image.name = "SaveImage";
  save_image.display_name = "Save Image (headless)";
  save_image.category = "Lethe/headless";
  save_image.description = "Headless stand-in for ComfyUI's SaveImage: writes PNGs into the run folder.";
  save_image.output_node = true;
  save_image.headless_only = true;
  save_image.inputs = {socket("images", types::kImage, "images"),
                       string_input("filename_prefix", "ComfyUI", "file name prefix")};
  register_node(save_image, [](NodeContext& context, const NodeInputs& in) {
    return save_images(context, in, in.text("filename_prefix"), in.where("filename_prefix"));
  });
}

}  // namespace lethe::graph::nodes
