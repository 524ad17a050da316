// Sampling from a native model with its token captions (diffusion/prompt_sampling).
#include "core/precision.hpp"
#include "core/text.hpp"
#include "diffusion/prompt_sampling.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"

namespace lethe::graph::nodes {

namespace {

std::vector<Value> sample_model(NodeContext& context, const NodeInputs& in) {
  auto model = in.object<std::shared_ptr<models::DiffusionModel>>("model");
  const std::vector<std::string> prompts = non_empty_lines(in.text("prompts"));
  check(!prompts.empty(), in.where("prompts"), ": no prompt given");
  diffusion::SamplingOptions options;
  options.steps = in.integer("steps");
  options.guidance = in.number("guidance");
  options.seed = static_cast<uint64_t>(in.integer("seed"));
  options.sampler = in.text("sampler");
  options.eta = in.number("eta");
  const std::string precision = in.has("precision") ? in.text("precision") : std::string(kDefaultPrecision);
  const PrecisionScope scope(resolve_precision(precision, in.where("precision"), model->device()).precision);
  const auto samples = diffusion::sample_prompts(*model, prompts, in.integer("samples_per_prompt"), in.integer("size"),
                                                 options, str("node ", context.node_id, " (LetheSample) samples_per_prompt x size"),
                                                 context.progress);
  if (samples.batch_size < options.batch_size)
    context.texts.push_back(str("sampling ", samples.batch_size, " images at a time to fit in memory"));
  return {image_value(samples.images)};
}

}  // namespace

void register_sampling_nodes() { register_table_node("LetheSample", sample_model); }

}  // namespace lethe::graph::nodes
