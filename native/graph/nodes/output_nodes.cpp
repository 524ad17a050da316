// Output nodes: saving a model, and headless stand-ins for ComfyUI's PreviewImage and
// SaveImage so workflows that use ComfyUI's own nodes run with `lethe run` too. Files are
// claimed by io/output_path (numbered, exclusive, inside the output folder).
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
  const at::Tensor& images = in.object<at::Tensor>("images");  // [B, H, W, C]
  check(images.dim() == 4, in.where("images"), ": expected IMAGE [B, H, W, C], got ", images.sizes());
  for (int64_t i = 0; context.writes_files() && i < images.size(0); ++i)
    context.files.push_back(
        io::write_numbered_file(context.run_directory, prefix, ".png", where, [&](const std::filesystem::path& file) {
          data::write_png(file, images[i].permute({2, 0, 1}), io::WriteMode::exclusive);
        }));
  context.previews.emplace_back(std::filesystem::path(prefix).filename().string(), images);
  return {};
}

// Saves under the prefix in ComfyUI's output folder (as SaveImage does: "lethe/x" lands in
// output/lethe/), headless in the run folder; the text names it relative to that folder.
std::vector<Value> save_model(NodeContext& context, const NodeInputs& in) {
  auto model = in.object<std::shared_ptr<models::DiffusionModel>>("model");
  if (!context.writes_files()) return {};
  auto found = context.folders.find("output");
  const std::filesystem::path folder = found != context.folders.end() ? found->second : context.run_directory;
  const std::filesystem::path path =
      io::write_numbered_file(folder, in.text("filename_prefix"), ".safetensors", in.where("filename_prefix"),
                              [&](const std::filesystem::path& file) { model->save_with_provenance(file); });
  context.files.push_back(path);
  context.texts.push_back("saved " + std::filesystem::relative(path, folder).generic_string());
  return {};
}

}  // namespace

void register_output_nodes() {
  register_table_node("LetheSaveModel", save_model);
  register_table_node("PreviewImage", [](NodeContext& context, const NodeInputs& in) {
    return save_images(context, in, "preview-node-" + io::file_name_part(context.node_id), in.where("images"));
  });
  register_table_node("SaveImage", [](NodeContext& context, const NodeInputs& in) {
    return save_images(context, in, in.text("filename_prefix"), in.where("filename_prefix"));
  });
}

}  // namespace lethe::graph::nodes
