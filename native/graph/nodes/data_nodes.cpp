// Data and model nodes: image folders (forget, retain sets), datasets from ComfyUI IMAGE +
// captions, spatial masks from MASK, and loading a model file. The sets are
// unlearn/example_set; the folders data/image_folder.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "core/text.hpp"
#include "data/image.hpp"
#include "data/image_folder.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "models/diffusion_model.hpp"

namespace lethe::graph::nodes {

namespace {

int64_t color_channels(const NodeInputs& in) { return in.text("color") == "rgb" ? 3 : 1; }

std::vector<Value> load_image_folder(NodeContext& context, const NodeInputs& in, const std::string& role) {
  data::ImageFolderOptions options;
  options.role = str("node ", context.node_id, ": ", role);
  options.channels = static_cast<int>(color_channels(in));
  options.resize = in.flag("resize");
  options.height = options.width = in.integer("size");
  data::ImageSet images = data::load_image_folder(in.text("folder"), options);
  unlearn::ExampleSet set = unlearn::example_set_from_images(images, str(role, " '", in.text("folder"), "'"));
  set.captions_optional = in.has("captions") && in.text("captions") == "optional";
  context.texts.push_back(str(images.size(), " images from ", in.text("folder")));
  return {dataset_value(set), image_value(images.images), Value::tensor(types::kMask, images.masks.squeeze(1).contiguous())};
}

std::vector<Value> dataset_from_images(NodeContext&, const NodeInputs& in) {
  at::Tensor pixels = from_comfy_image(in.object<at::Tensor>("images"), color_channels(in), in.where("images"));  // [B, C, H, W]
  const std::vector<std::string> lines = non_empty_lines(in.text("captions"));
  const int64_t count = pixels.size(0), height = pixels.size(2), width = pixels.size(3);
  check(lines.size() == 1 || static_cast<int64_t>(lines.size()) == count, in.where("captions"), ": ", lines.size(),
        " captions for ", count, " images (give one per image, or one for all)");
  unlearn::ExampleSet set;
  set.name = "dataset from images";
  set.images = data::to_model_space(pixels);
  for (int64_t i = 0; i < count; ++i) set.captions.push_back(lines.size() == 1 ? lines[0] : lines[i]);
  set.masks = in.has("mask") ? unlearn::spatial_masks(in.object<at::Tensor>("mask"), count, height, width, in.where("mask"))
                             : at::ones({count, 1, height, width});
  set.validate();
  return {dataset_value(set)};
}

std::vector<Value> restrict_to_mask(NodeContext&, const NodeInputs& in) {
  const auto& source = *in.object<DatasetPtr>("dataset");
  check(!source.empty(), in.where("dataset"), ": the dataset is empty");
  unlearn::ExampleSet set = source;
  set.masks = unlearn::spatial_masks(in.object<at::Tensor>("mask"), source.size(), source.images.size(2),
                                     source.images.size(3), in.where("mask"));
  return {dataset_value(set)};
}

std::vector<Value> load_model(NodeContext& context, const NodeInputs& in) {
  check(!in.text("path").empty(), in.where("path"), ": expected the path of a Lethe or LDM .safetensors model, got none");
  auto model = models::DiffusionModel::load(in.text("path"));
  context.texts.push_back(str("sha256 ", model->source_sha256.substr(0, 12)));
  return {Value(types::kModel, model)};
}

}  // namespace

void register_data_nodes() {
  register_table_node("LetheLoadForgetSet", [](NodeContext& context, const NodeInputs& in) {
    return load_image_folder(context, in, "forget set");
  });
  register_table_node("LetheLoadRetainSet", [](NodeContext& context, const NodeInputs& in) {
    return load_image_folder(context, in, "retain set");
  });
  register_table_node("LetheDatasetFromImages", dataset_from_images);
  register_table_node("LetheSpatialMask", restrict_to_mask);
  register_table_node("LetheLoadModel", load_model);
}

}  // namespace lethe::graph::nodes
