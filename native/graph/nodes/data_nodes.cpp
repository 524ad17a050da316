// Data and model nodes: image folders (forget, retain, anchor sets), datasets from ComfyUI
// IMAGE + captions, spatial masks from MASK, and loading a model file.
#include <ATen/ATen.h>

#include <sstream>

#include "core/error.hpp"
#include "data/idx.hpp"
#include "data/image_folder.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "models/diffusion_model.hpp"
#include "unlearn/run.hpp"

namespace lethe::graph::nodes {

namespace {

void register_image_folder(const std::string& name, const std::string& role, const std::string& display) {
  NodeSchema schema;
  schema.name = name;
  schema.display_name = display;
  schema.category = "Lethe/data";
  schema.description = "A folder of images (png, jpg, bmp) with optional captions (name.txt) and masks "
                       "(name.mask.png: white = the region that counts).";
  schema.inputs = {
      path_input("folder", "path of the image folder"),
      combo_input("color", {"grayscale", "rgb"}, "grayscale", "channels the model expects (the bench model is grayscale)"),
      bool_input("resize", false, "resize images of another size instead of failing"),
      int_input("size", 0, 0, 4096, "square size to resize to (0 = the first image's size)"),
  };
  // Optional (added later), so saved workflows keep their widget positions.
  InputSpec captions = combo_input("captions", {"required", "optional"}, "required",
                                   "required: every image needs name.txt (training fails otherwise); optional: images "
                                   "without one train the empty caption");
  captions.required = false;
  schema.inputs.push_back(captions);
  schema.outputs = {{"dataset", types::kDataset, "the images, captions and masks"},
                    {"images", types::kImage, "the images as IMAGE"},
                    {"masks", types::kMask, "the masks as MASK"}};
  register_node(schema, [role](NodeContext& context, const NodeInputs& in) {
    data::ImageFolderOptions options;
    options.role = str("node ", context.node_id, ": ", role);
    options.channels = in.text("color") == "rgb" ? 3 : 1;
    options.resize = in.flag("resize");
    options.height = options.width = in.integer("size");
    data::ImageSet images = data::load_image_folder(in.text("folder"), options);
    unlearn::ExampleSet set;
    set.name = str(role, " '", in.text("folder"), "'");
    set.images = images.images * 2.0 - 1.0;
    set.masks = images.masks;
    set.captions = images.captions;
    set.names = images.names;
    set.captions_optional = in.has("captions") && in.text("captions") == "optional";
    context.texts.push_back(str(images.size(), " images from ", in.text("folder")));
    return std::vector<Value>{dataset_value(set), image_value(images.images),
                              Value::tensor(types::kMask, images.masks.squeeze(1).contiguous())};
  });
}

void register_dataset_from_images() {
  NodeSchema schema;
  schema.name = "LetheDatasetFromImages";
  schema.display_name = "Lethe Dataset from Images";
  schema.category = "Lethe/data";
  schema.description = "Makes a dataset from ComfyUI images and captions (one caption per line, or one for all), with "
                       "an optional MASK as spatial masks: only the masked region of each image is forgotten.";
  schema.inputs = {socket("images", types::kImage, "the images"),
                   string_input("captions", "", "one caption per line (a single line applies to every image)", true),
                   combo_input("color", {"grayscale", "rgb"}, "grayscale", "channels the model expects"),
                   socket("mask", types::kMask, "optional spatial masks [B, H, W] (1 = forget this region)", false)};
  schema.outputs = {{"dataset", types::kDataset, "the dataset"}};
  register_node(schema, [](NodeContext&, const NodeInputs& in) {
    at::Tensor pixels = from_comfy_image(in.value("images").as<at::Tensor>(in.where("images")),
                                         in.text("color") == "rgb" ? 3 : 1, in.where("images"));
    std::vector<std::string> lines;
    std::stringstream stream(in.text("captions"));
    std::string line;
    while (std::getline(stream, line))
      if (!line.empty()) lines.push_back(line);
    const int64_t count = pixels.size(0);
    check(lines.size() == 1 || static_cast<int64_t>(lines.size()) == count, in.where("captions"), ": ", lines.size(),
          " captions for ", count, " images (give one per image, or one for all)");
    unlearn::ExampleSet set;
    set.name = "dataset from images";
    set.images = pixels * 2.0 - 1.0;
    for (int64_t i = 0; i < count; ++i) set.captions.push_back(lines.size() == 1 ? lines[0] : lines[i]);
    set.masks = at::ones({count, 1, pixels.size(2), pixels.size(3)});
    if (in.has("mask")) {
      at::Tensor mask = in.value("mask").as<at::Tensor>(in.where("mask")).to(at::kFloat);
      if (mask.dim() == 2) mask = mask.unsqueeze(0);
      check(mask.dim() == 3 && mask.size(1) == pixels.size(2) && mask.size(2) == pixels.size(3) &&
                (mask.size(0) == count || mask.size(0) == 1),
            in.where("mask"), ": expected MASK [", count, " or 1, ", pixels.size(2), ", ", pixels.size(3), "], got ",
            mask.sizes());
      set.masks = mask.unsqueeze(1).expand({count, 1, -1, -1}).contiguous();
    }
    set.validate();
    return std::vector<Value>{dataset_value(set)};
  });
}

void register_spatial_mask() {
  NodeSchema schema;
  schema.name = "LetheSpatialMask";
  schema.display_name = "Lethe Spatial Mask";
  schema.category = "Lethe/selection";
  schema.description = "Restricts forgetting to a region: the MASK (1 = forget) replaces the dataset's masks.";
  schema.inputs = {socket("dataset", types::kDataset, "the forget set"),
                   socket("mask", types::kMask, "MASK [B or 1, H, W], 1 where the image should be forgotten")};
  schema.outputs = {{"dataset", types::kDataset, "the dataset with spatial masks"}};
  register_node(schema, [](NodeContext&, const NodeInputs& in) {
    const auto& source = *in.object<DatasetPtr>("dataset");
    check(!source.empty(), in.where("dataset"), ": the dataset is empty");
    at::Tensor mask = in.value("mask").as<at::Tensor>(in.where("mask")).to(at::kFloat);
    if (mask.dim() == 2) mask = mask.unsqueeze(0);
    const int64_t count = source.size();
    check(mask.dim() == 3 && mask.size(1) == source.images.size(2) && mask.size(2) == source.images.size(3) &&
              (mask.size(0) == count || mask.size(0) == 1),
          in.where("mask"), ": expected MASK [", count, " or 1, ", source.images.size(2), ", ", source.images.size(3),
          "], got ", mask.sizes());
    unlearn::ExampleSet set = source;
    set.masks = mask.unsqueeze(1).expand({count, 1, -1, -1}).contiguous();
    return std::vector<Value>{dataset_value(set)};
  });
}

void register_load_model() {
  NodeSchema load;
  load.name = "LetheLoadModel";
  load.display_name = "Lethe Load Model";
  load.category = "Lethe/models";
  load.description = "Loads a Lethe model file or the UNet of an SD1.x/2.x checkpoint (.safetensors), strictly, with the "
                     "configuration detected from the weights.";
  load.inputs = {path_input("path", "path of the .safetensors file")};
  load.outputs = {{"model", types::kModel, "the diffusion model"}};
  register_node(load, [](NodeContext& context, const NodeInputs& in) {
    auto model = models::DiffusionModel::load(in.text("path"));
    context.texts.push_back(str("sha256 ", model->source_sha256.substr(0, 12)));
    return std::vector<Value>{Value(types::kModel, model)};
  });
}

}  // namespace

void register_data_nodes() {
  register_image_folder("LetheLoadForgetSet", "forget set", "Lethe Load Forget Set (folder)");
  register_image_folder("LetheLoadRetainSet", "retain set", "Lethe Load Retain Set (folder)");
  register_dataset_from_images();
  register_spatial_mask();
  register_load_model();
}

}  // namespace lethe::graph::nodes
