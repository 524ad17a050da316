// Sampling from a native model with its token captions.
#include <sstream>

#include "diffusion/sampling.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "core/runtime.hpp"
#include "models/diffusion_model.hpp"
#include "models/unet_memory.hpp"

namespace lethe::graph::nodes {

void register_sampling_nodes() {
  NodeSchema schema;
  schema.name = "LetheSample";
  schema.display_name = "Lethe Sample";
  schema.category = "Lethe/sampling";
  schema.description = "Generates images from a Lethe model for each prompt (one per line), DDIM or DDPM with "
                       "classifier-free guidance. Sample i always starts from the noise of seed + i, so the same "
                       "seed compares models image by image.";
  schema.inputs = {socket("model", types::kModel, "the model"),
                   string_input("prompts", "artist_lethe piece_07 sneaker footwear", "one prompt per line", true),
                   int_input("samples_per_prompt", 4, 1, 1024, "images per prompt"),
                   int_input("steps", 25, 1, 1000, "sampler steps"),
                   float_input("guidance", 3.0, 0.0, 30.0, 0.1, "classifier-free guidance scale (1 = none)"),
                   seed_input("seed", "noise seed"),
                   combo_input("sampler", {"ddim", "ddpm"}, "ddim", "sampler"),
                   float_input("eta", 0.0, 0.0, 1.0, 0.01, "DDIM eta (0 = deterministic)"),
                   int_input("size", 28, 8, 4096, "image height = width in model space (the bench model: 28)")};
  schema.outputs = {{"images", types::kImage, "prompt-major: all samples of prompt 1, then prompt 2, ..."}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    auto model = in.object<std::shared_ptr<models::DiffusionModel>>("model");
    std::vector<std::string> prompts;
    std::stringstream stream(in.text("prompts"));
    std::string line;
    while (std::getline(stream, line))
      if (!line.empty()) prompts.push_back(line);
    check(!prompts.empty(), in.where("prompts"), ": no prompt given");
    const int64_t per_prompt = in.integer("samples_per_prompt");
    std::vector<std::string> captions;
    for (const auto& prompt : prompts)
      for (int64_t k = 0; k < per_prompt; ++k) captions.push_back(prompt);
    diffusion::SamplingOptions options;
    options.steps = in.integer("steps");
    options.guidance = in.number("guidance");
    options.seed = static_cast<uint64_t>(in.integer("seed"));
    options.sampler = in.text("sampler");
    options.eta = in.number("eta");
    const auto& config = model->unet()->config();
    const int64_t size = in.integer("size");
    // Refuse (or sample in smaller batches) before the allocator fails halfway.
    options.batch_size = models::sampling_batch_that_fits(
        config, static_cast<int64_t>(captions.size()), config.in_channels, size, size, options.guidance != 1.0,
        options.batch_size, available_memory_bytes(), str("node ", context.node_id, " (LetheSample) samples_per_prompt x size"));
    if (options.batch_size < diffusion::SamplingOptions{}.batch_size)
      context.texts.push_back(str("sampling ", options.batch_size, " images at a time to fit in memory"));
    at::Tensor samples = diffusion::sample(*model, model->schedule(), model->context_for(captions), model->context_for({""}),
                                           {config.in_channels, size, size}, options, {}, context.progress);
    return std::vector<Value>{image_value(((samples + 1.0) * 0.5).clamp(0.0, 1.0))};
  });
}

}  // namespace lethe::graph::nodes
