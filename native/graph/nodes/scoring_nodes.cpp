// Copy detection nodes: load a descriptor, score images against reference images with SSCD
// (memorization rate, per-image scores, a preview). The scoring is eval/copy_scores.
#include <ATen/ATen.h>

#include "eval/copy_scores.hpp"
#include "eval/descriptor.hpp"
#include "io/atomic_file.hpp"
#include "io/output_path.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"

namespace lethe::graph::nodes {

namespace {

std::vector<Value> load_descriptor(NodeContext& context, const NodeInputs& in) {
  auto descriptor = in.text("source") == "file" ? eval::load_descriptor(in.text("path"))
                                                : eval::named_descriptor(in.text("source"), in.where("source"));
  context.texts.push_back(str(descriptor->kind(), ", ", descriptor->dim(), "-d"));
  return {Value(types::kDescriptor, descriptor)};
}

std::vector<Value> score_images(NodeContext& context, const NodeInputs& in) {
  auto descriptor = in.has("descriptor") ? in.object<std::shared_ptr<eval::Descriptor>>("descriptor")
                                         : eval::default_descriptor(in.where("descriptor"));
  at::Tensor images = from_comfy_image(in.object<at::Tensor>("images"), 3, in.where("images"));           // [N, 3, H, W]
  at::Tensor references = from_comfy_image(in.object<at::Tensor>("reference"), 3, in.where("reference"));  // [R, 3, H, W]
  eval::check_suited(*descriptor, images, in.where("images"));
  eval::check_suited(*descriptor, references, in.where("reference"));
  eval::CopyScores scores =
      eval::score_copies(*descriptor, images, references, in.number("threshold"), in.text("match") == "paired");
  context.texts.push_back(eval::copy_scores_line(scores, descriptor->label()));
  at::Tensor preview = eval::draw_copy_scores(images, scores);
  context.previews.emplace_back("sscd", to_comfy_image(preview));
  const std::vector<Value> outputs = {json_value("FLOAT", scores.memorization_rate),
                                      json_value("STRING", scores.json.dump()), image_value(preview)};
  if (!context.writes_files()) return outputs;
  // The per-image scores as files beside the preview, JSON and CSV under one number.
  const std::filesystem::path json_file = io::write_numbered_file(
      context.run_directory, "sscd-scores-node-" + io::file_name_part(context.node_id), ".json", in.where("images"),
      [&](const std::filesystem::path& file) { io::write_file_atomic(file, scores.json.dump(2), io::WriteMode::exclusive); });
  std::filesystem::path csv_file = json_file;
  io::write_file_atomic(csv_file.replace_extension(".csv"), eval::copy_scores_csv(scores), io::WriteMode::exclusive);
  context.files.push_back(json_file);
  context.files.push_back(csv_file);
  context.texts.push_back(str("per-image scores: ", json_file.filename().string(), ", ", csv_file.filename().string()));
  return outputs;
}

}  // namespace

void register_scoring_nodes() {
  register_table_node("LetheLoadDescriptor", load_descriptor);
  register_table_node("LetheSSCDScore", score_images);
}

}  // namespace lethe::graph::nodes
