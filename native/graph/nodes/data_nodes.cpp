// Data and model nodes: the embedded bench's data and models, image folders (forget,
// retain, anchor sets), datasets from ComfyUI IMAGE + captions, spatial masks from MASK,
// and loading a model file.
#include <ATen/ATen.h>

#include <sstream>

#include "bench/bench_evaluation.hpp"
#include "bench/fashion_bench.hpp"
#include "core/error.hpp"
#include "data/idx.hpp"
#include "data/image_folder.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "models/diffusion_model.hpp"
#include "unlearn/run.hpp"

namespace lethe::graph::nodes {

namespace {

std::vector<std::string> class_and_superclass_names() {
  std::vector<std::string> names = data::fashion_mnist_classes();
  for (const char* superclass : {"top", "bottom", "onepiece", "footwear", "accessory"}) names.push_back(superclass);
  return names;
}

std::vector<int64_t> parse_pieces(const std::string& text, const std::string& where) {
  std::vector<int64_t> pieces;
  if (text == "all" || text.empty()) return pieces;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    try {
      pieces.push_back(std::stoll(item));
    } catch (const std::exception&) {
      throw Error(str(where, ": expected 'all' or a comma-separated list of pieces 0..9, got '", text, "'"));
    }
  }
  return pieces;
}

unlearn::ExampleSet empty_set(const std::string& name) {
  unlearn::ExampleSet set;
  set.name = name;
  return set;
}

void register_bench_data() {
  NodeSchema schema;
  schema.name = "LetheBenchData";
  schema.display_name = "Lethe Bench Data (Fashion-MNIST artist)";
  schema.category = "Lethe/data";
  schema.description = "The embedded bench: the artist's forget set (data task) or a class concept with its anchor "
                       "(concept task), and the retain set. Real Fashion-MNIST images; nothing downloaded.";
  schema.inputs = {
      combo_input("task", {"data", "concept"}, "data", "data: forget the artist's images; concept: erase a class"),
      string_input("forget_pieces", "all", "artist pieces to forget: 'all' or e.g. '0,3,7' (data task)"),
      combo_input("concept", data::fashion_mnist_classes(), "sneaker", "the class to erase (concept task)"),
      combo_input("anchor", class_and_superclass_names(), "footwear",
                  "what the erased class should become: a near class (sandal) or a superclass (footwear)"),
      int_input("retain_limit", 0, 0, 1000000, "use at most this many retain images (0 = all 59990)"),
  };
  schema.outputs = {{"forget", types::kDataset, "the forget set (empty for the concept task)"},
                    {"retain", types::kDataset, "the retain set"},
                    {"anchor", types::kDataset, "anchor images with the anchor caption (concept task)"},
                    {"target_prompt", "STRING", "the erased concept's caption (concept task)"},
                    {"forget_images", types::kImage, "the forget images (or anchor images) as IMAGE"}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    unlearn::DataConfig config;
    config.task = in.text("task");
    config.forget_pieces = parse_pieces(in.text("forget_pieces"), in.where("forget_pieces"));
    config.concept_name = in.text("concept");
    config.anchor = in.text("anchor");
    config.retain_limit = in.integer("retain_limit");
    unlearn::TaskData data = unlearn::bench_task_data(config);
    const bool data_task = config.task == "data";
    const at::Tensor shown = data_task ? data.forget.images : data.anchor.images.narrow(0, 0, 16);
    context.texts.push_back(str(data_task ? data.forget.size() : data.anchor.size(),
                                data_task ? " forget images, " : " anchor images, ", data.retain.size(), " retain images"));
    return std::vector<Value>{dataset_value(data_task ? data.forget : empty_set("forget set")), dataset_value(data.retain),
                              dataset_value(data_task ? empty_set("anchor set") : data.anchor),
                              json_value("STRING", data_task ? "" : data.target_captions.at(0)),
                              image_value(bench::to_pixels(shown))};
  });
}

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

void register_models() {
  NodeSchema bench;
  bench.name = "LetheBenchModel";
  bench.display_name = "Lethe Bench Model";
  bench.category = "Lethe/models";
  bench.description = "The embedded bench's diffusion models: base (trained with the artist's images, memorizes them) "
                      "or retrained (never saw them; the gold standard).";
  bench.inputs = {combo_input("which", {"base", "retrained"}, "base", "which bench model")};
  bench.outputs = {{"model", types::kModel, "the diffusion model"}};
  register_node(bench, [](NodeContext& context, const NodeInputs& in) {
    auto path = bench::bench_model_dir() / (in.text("which") + ".safetensors");
    check(std::filesystem::exists(path), in.where("which"), ": bench model '", path.string(),
          "' is missing (run `make bench-models`)");
    auto model = models::DiffusionModel::load(path);
    context.texts.push_back(str(in.text("which"), " ", model->source_sha256.substr(0, 12)));
    return std::vector<Value>{Value(types::kModel, model)};
  });

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
  register_bench_data();
  register_image_folder("LetheLoadForgetSet", "forget set", "Lethe Load Forget Set (folder)");
  register_image_folder("LetheLoadRetainSet", "retain set", "Lethe Load Retain Set (folder)");
  register_dataset_from_images();
  register_spatial_mask();
  register_models();
}

}  // namespace lethe::graph::nodes
