// Output nodes: saving a model, and headless stand-ins for ComfyUI's PreviewImage and
// SaveImage so workflows that use ComfyUI's own nodes run with `lethe run` too.
#include <ATen/ATen.h>

#include <cstdio>

#include "data/image.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "models/diffusion_model.hpp"

namespace lethe::graph::nodes {

namespace {

std::vector<Value> save_images(NodeContext& context, const NodeInputs& in, const std::string& prefix) {
  const at::Tensor& images = in.value("images").as<at::Tensor>(in.where("images"));
  check(images.dim() == 4, in.where("images"), ": expected IMAGE [B, H, W, C], got ", images.sizes());
  for (int64_t i = 0; i < images.size(0); ++i) {
    char name[64];
    std::snprintf(name, sizeof(name), "_%05lld_.png", static_cast<long long>(i + 1));
    const auto path = context.run_directory / (prefix + name);
    data::write_png(path, images[i].permute({2, 0, 1}));
    context.files.push_back(path);
  }
  context.previews.emplace_back(prefix, images);
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
    const std::filesystem::path path =
        new_numbered_file(context.run_directory, in.text("filename_prefix"), in.where("filename_prefix"), "output folder");
    io::Metadata metadata = model->source_metadata;
    for (const auto& key : {"lethe.format", "lethe.unet_config", "lethe.text_encoder_config", "lethe.schedule"})
      metadata.erase(key);
    model->save(path, metadata);
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
    return save_images(context, in, "preview-node-" + context.node_id);
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
    const std::string prefix = in.text("filename_prefix");
    check(prefix.find("..") == std::string::npos, in.where("filename_prefix"), ": must stay inside the run folder");
    std::filesystem::create_directories((context.run_directory / prefix).parent_path());
    return save_images(context, in, prefix);
  });
}

}  // namespace lethe::graph::nodes
