// Copy detection nodes: load a descriptor, score images against reference images with SSCD
// (memorization rate, per-image scores, a preview).
#include <ATen/ATen.h>

#include <cstdio>

#include "data/image.hpp"
#include "draw/canvas.hpp"
#include "eval/descriptor.hpp"
#include "eval/sscd_metrics.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"

namespace lethe::graph::nodes {

namespace {

// The default descriptor when none is connected: the first named one (the bench's, when the
// bench is registered).
std::shared_ptr<eval::Descriptor> default_descriptor(const std::string& where) {
  const auto names = eval::named_descriptor_names();
  check(!names.empty(), where, ": no descriptor connected and none is built in; connect Lethe Load SSCD Descriptor");
  return eval::named_descriptor(names.front(), where);
}

// A grid of the images with their best score (and matched reference) under each.
at::Tensor score_preview(const at::Tensor& images, const at::Tensor& assigned,
                         const at::Tensor& scores, double threshold) {
  const int64_t count = images.size(0);
  const int cell = 84, gap = 6, columns = 8;
  const int64_t rows = (count + columns - 1) / columns;
  draw::Canvas canvas(columns * (cell + gap) + gap, static_cast<int>(rows) * (cell + 22) + 10);
  for (int64_t i = 0; i < count; ++i) {
    const int x = gap + static_cast<int>(i % columns) * (cell + gap), y = 4 + static_cast<int>(i / columns) * (cell + 22);
    at::Tensor image = data::resize_image(images[i], cell, cell);
    canvas.paste(image, x, y);
    const double score = scores[i].item<double>();
    const draw::Color color = score >= threshold ? draw::colors::red : draw::colors::green;
    canvas.frame({x - 1, y - 1, cell + 2, cell + 2}, color, 2);
    const int64_t ref = assigned[i].item<int64_t>();
    canvas.text_centered(str(ref >= 0 ? "ref " + std::to_string(ref) + ": " : "", score), {x, y + cell + 2, cell, 16}, 12, color, true);
  }
  return canvas.tensor().unsqueeze(0);
}

}  // namespace

void register_scoring_nodes() {
  NodeSchema load;
  load.name = "LetheLoadDescriptor";
  load.display_name = "Lethe Load SSCD Descriptor";
  load.category = "Lethe/scoring";
  load.description = "A copy-detection descriptor: the bench's embedded one, or an official SSCD TorchScript file "
                     "(e.g. sscd_disc_mixup.torchscript.pt, official preprocessing) or a Lethe .safetensors one.";
  std::vector<std::string> sources = eval::named_descriptor_names();
  sources.push_back("file");
  load.inputs = {combo_input("source", sources, sources.front(), "which descriptor: a built-in one, or a file"),
                 path_input("path", "the descriptor file (source = file)")};
  load.outputs = {{"descriptor", types::kDescriptor, "the descriptor"}};
  register_node(load, [](NodeContext& context, const NodeInputs& in) {
    auto descriptor = in.text("source") == "file" ? eval::load_descriptor(in.text("path"))
                                                  : eval::named_descriptor(in.text("source"), in.where("source"));
    context.texts.push_back(str(descriptor->kind(), ", ", descriptor->dim(), "-d"));
    return std::vector<Value>{Value(types::kDescriptor, descriptor)};
  });

  NodeSchema score;
  score.name = "LetheSSCDScore";
  score.display_name = "Lethe SSCD Score";
  score.category = "Lethe/scoring";
  score.description = "Copy detection: SSCD cosine similarity of each image to reference images (e.g. generations vs "
                      "an artist's originals). paired: image i belongs to reference floor(i R / N); any: best match over "
                      "all references. Memorization rate = share of images at or above the threshold.";
  score.output_node = true;
  score.inputs = {socket("images", types::kImage, "images to check (e.g. generations)"),
                  socket("reference", types::kImage, "the reference images (e.g. the forget set)"),
                  float_input("threshold", 0.5, -1.0, 1.0, 0.01, "copy threshold on the cosine similarity"),
                  combo_input("match", {"any", "paired"}, "any", "score against the best reference, or the paired one"),
                  socket("descriptor", types::kDescriptor, "the descriptor (default: the bench's)", false)};
  score.outputs = {{"memorization_rate", "FLOAT", "share of images at or above the threshold"},
                   {"scores", "STRING", "per-image best score and matched reference (JSON)"},
                   {"preview", types::kImage, "images with their scores (red = copy)"}};
  register_node(score, [](NodeContext& context, const NodeInputs& in) {
    auto descriptor = in.has("descriptor") ? in.object<std::shared_ptr<eval::Descriptor>>("descriptor")
                                           : default_descriptor(in.where("descriptor"));
    at::Tensor images = from_comfy_image(in.value("images").as<at::Tensor>(in.where("images")), 3, in.where("images"));
    at::Tensor references = from_comfy_image(in.value("reference").as<at::Tensor>(in.where("reference")), 3, in.where("reference"));
    at::Tensor generated = eval::embed_batched(*descriptor, images);
    at::Tensor reference = eval::embed_batched(*descriptor, references);
    at::Tensor similarity = eval::similarity_matrix(generated, reference);  // [N, R]
    const int64_t count = images.size(0), refs = references.size(0);
    at::Tensor assigned = in.text("match") == "paired"
                              ? (at::arange(count, at::kLong) * refs).div(count, "floor")
                              : at::full({count}, -1, at::kLong);
    at::Tensor best = eval::best_match(similarity, assigned);
    at::Tensor matched = in.text("match") == "paired" ? assigned : std::get<1>(similarity.max(1));
    const double threshold = in.number("threshold");
    const double rate = eval::memorization_rate(best, threshold);
    nlohmann::json scores = nlohmann::json::array();
    for (int64_t i = 0; i < count; ++i)
      scores.push_back({{"image", i}, {"reference", matched[i].item<int64_t>()}, {"score", best[i].item<double>()}});
    nlohmann::json result = {{"memorization_rate", rate}, {"threshold", threshold}, {"descriptor", descriptor->kind()},
                             {"descriptor_sha256", descriptor->sha256}, {"scores", scores}};
    context.texts.push_back(str("memorization rate ", rate, " at threshold ", threshold));
    at::Tensor preview = score_preview(images, matched, best, threshold);
    context.previews.emplace_back("sscd", to_comfy_image(preview));
    return std::vector<Value>{json_value("FLOAT", rate), json_value("STRING", result.dump()), image_value(preview)};
  });
}

}  // namespace lethe::graph::nodes
