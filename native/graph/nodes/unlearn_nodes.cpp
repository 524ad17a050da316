// The training node: unlearn a model with an objective, selections and data.
#include <ATen/ATen.h>

#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "data/image.hpp"
#include "models/diffusion_model.hpp"
#include "unlearn/run.hpp"

namespace lethe::graph::nodes {

void register_unlearn_nodes() {
  NodeSchema schema;
  schema.name = "LetheUnlearn";
  schema.display_name = "Lethe Unlearn";
  schema.category = "Lethe/unlearn";
  schema.description = "Masked unlearning training in native C++: the objective on the forget/retain (or anchor) data, "
                       "restricted by the optional timestep, frequency and spatial selections. Shows progress; Cancel "
                       "stops within one step and leaves a resumable checkpoint.";
  InputSpec target = socket("target_prompt", "STRING", "concept task: the caption of the concept to erase", false);
  target.force_input = true;
  schema.inputs = {socket("model", types::kModel, "the model to unlearn (it is not modified; a copy is trained)"),
                   socket("objective", types::kObjective, "the objective (an objective node)"),
                   int_input("steps", 160, 1, 1000000, "optimizer steps"),
                   int_input("batch_size", 16, 1, 4096, "examples per micro-batch"),
                   float_input("learning_rate", 3e-5, 1e-8, 1.0, 1e-6, "AdamW learning rate (constant)"),
                   seed_input("seed", "seed of batches, timesteps and noise"),
                   combo_input("trainable", {"full", "lora"}, "full", "train every UNet weight, or LoRA adapters only"),
                   int_input("lora_rank", 4, 1, 256, "LoRA rank (trainable = lora)"),
                   // Added after the first release: last among the widgets, so saved workflows keep their
                   // widgets_values positions.
                   float_input("retain_caption_dropout", 0.1, 0.0, 0.99, 0.01,
                               "probability that a retain example trains the empty caption (keeps guidance's "
                               "unconditional branch as the base model had it)"),
                   socket("forget", types::kDataset, "the forget set (data unlearning)", false),
                   socket("retain", types::kDataset, "the retain set", false),
                   socket("anchor", types::kDataset, "anchor images with the anchor caption (concept unlearning)", false),
                   target,
                   socket("target_conditioning", types::kConditioning,
                          "concept task with a host model: the CONDITIONING of the concept to erase (CLIPTextEncode)",
                          false),
                   socket("timesteps", types::kTimesteps, "timestep selection for the forget term", false),
                   socket("frequency", types::kFrequency, "frequency selection for the forget term", false)};
  schema.outputs = {{"model", types::kModel, "the unlearned model"},
                    {"loss_curve", types::kImage, "the loss terms per step"},
                    {"summary", "STRING", "the run summary (JSON)"},
                    {"lora", types::kLora, "the trained adapters (trainable = lora) for Lethe Save LoRA"}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    auto model = in.object<std::shared_ptr<models::DiffusionModel>>("model");
    const auto& objective = in.object<ObjectiveSpec>("objective");
    unlearn::RunConfig config = unlearn::RunConfig::defaults();
    config.objective = objective.name;
    config.objective_config = objective.config;
    config.trainer.steps = in.integer("steps");
    config.trainer.batch_size = in.integer("batch_size");
    config.trainer.optimizer.learning_rate = in.number("learning_rate");
    config.trainer.retain_caption_dropout = in.number("retain_caption_dropout");
    config.trainer.seed = static_cast<uint64_t>(in.integer("seed"));
    config.trainable = in.text("trainable");
    config.lora.rank = in.integer("lora_rank");
    config.lora.alpha = static_cast<double>(config.lora.rank);
    if (in.has("timesteps")) config.timesteps = in.object<unlearn::TimestepSelectionConfig>("timesteps");
    if (in.has("frequency")) config.frequency = in.object<unlearn::FrequencySelectionConfig>("frequency");
    config.output = (context.run_directory / ("unlearn-node-" + context.node_id)).string();

    unlearn::TaskData data;
    if (in.has("forget")) data.forget = *in.object<DatasetPtr>("forget");
    if (in.has("retain")) data.retain = *in.object<DatasetPtr>("retain");
    if (in.has("anchor")) data.anchor = *in.object<DatasetPtr>("anchor");
    if (in.has("target_prompt")) {
      const std::string prompt = in.text("target_prompt");
      if (!prompt.empty()) data.target_captions = {prompt};
    }
    if (in.has("target_conditioning")) {
      at::Tensor conditioning = in.value("target_conditioning").as<at::Tensor>(in.where("target_conditioning"));
      check(conditioning.dim() == 3, in.where("target_conditioning"), ": expected CONDITIONING [N, L, D], got ",
            conditioning.sizes());
      data.target_contexts = conditioning.to(at::kFloat).contiguous();
    }
    for (unlearn::ExampleSet* set : {&data.forget, &data.retain, &data.anchor})
      if (!set->empty()) set->validate();
    auto result = unlearn::run_unlearning(config, context.progress, model, &data);
    context.files.push_back(result.model_file);
    context.texts.push_back(str(result.summary["steps"].get<int64_t>(), " steps in ",
                                static_cast<int>(result.summary["wall_seconds"].get<double>()), " s"));
    at::Tensor curve = data::read_image(result.directory / "loss.png", 3).unsqueeze(0);  // [1, 3, H, W]
    return std::vector<Value>{Value(types::kModel, result.model), image_value(curve),
                              json_value("STRING", result.summary.dump()),
                              Value(types::kLora, std::make_shared<LoraResult>(
                                                     LoraResult{result.lora_file, result.model->unet()->config()}))};
  });
}

}  // namespace lethe::graph::nodes
