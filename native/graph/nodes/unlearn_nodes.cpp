// The training node: unlearn a model with an objective, selections and data.
#include <ATen/ATen.h>

#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "data/image.hpp"
#include "io/output_path.hpp"
#include "models/diffusion_model.hpp"
#include "models/host_model.hpp"
#include "unlearn/run.hpp"

namespace lethe::graph::nodes {

namespace {

InputSpec target_prompt_input() {
  InputSpec target = socket("target_prompt", "STRING", "concept task: the caption of the concept to erase", false);
  target.force_input = true;
  return target;
}

// The unlearning defaults (unlearn/trainer.hpp, models/lora.hpp): the widgets show them.
const unlearn::TrainerConfig kTrainer;
const models::LoraConfig kLora;

// Training widgets shared by both unlearn nodes (same names, defaults and order).
std::vector<InputSpec> training_inputs() {
  return {int_input("steps", kTrainer.steps, 1, 1000000, "optimizer steps"),
          int_input("batch_size", kTrainer.batch_size, 1, 4096, "examples per micro-batch"),
          float_input("learning_rate", kTrainer.optimizer.learning_rate, 1e-8, 1.0, 1e-6, "AdamW learning rate (constant)"),
          seed_input("seed", "seed of batches, timesteps and noise")};
}

std::vector<InputSpec> data_inputs() {
  return {socket("forget", types::kDataset, "the forget set (data unlearning)", false),
          socket("retain", types::kDataset, "the retain set", false),
          socket("anchor", types::kDataset, "anchor images with the anchor caption (concept unlearning)", false)};
}

InputSpec target_conditioning_input() {
  return socket("target_conditioning", types::kConditioning,
                "concept task with a host model: the CONDITIONING of the concept to erase (CLIPTextEncode)", false);
}

std::vector<InputSpec> selection_inputs() {
  return {socket("timesteps", types::kTimesteps, "timestep selection for the forget term", false),
          socket("frequency", types::kFrequency, "frequency selection for the forget term", false)};
}

// How often a run saves its checkpoint (optional, last: saved workflows keep their positions).
InputSpec checkpoint_input() {
  InputSpec spec = float_input("checkpoint_minutes", kTrainer.checkpoint_seconds / 60.0, 0.0, 1440.0, 0.5,
                               "minutes of training between checkpoints (0 = only on cancel or failure); a cancelled, "
                               "crashed or killed run resumes from its last checkpoint when run again unchanged");
  spec.required = false;
  return spec;
}

// The run config of an unlearn node's widgets and selections.
unlearn::RunConfig node_run_config(const NodeInputs& in) {
  const auto& objective = in.object<ObjectiveSpec>("objective");
  unlearn::RunConfig config;
  config.objective = objective.name;
  config.objective_config = objective.config;
  config.trainer.steps = in.integer("steps");
  config.trainer.batch_size = in.integer("batch_size");
  config.trainer.optimizer.learning_rate = in.number("learning_rate");
  config.trainer.retain_caption_dropout = in.number("retain_caption_dropout");
  config.trainer.seed = static_cast<uint64_t>(in.integer("seed"));
  config.lora.rank = in.integer("lora_rank");
  config.lora.alpha = static_cast<double>(config.lora.rank);
  if (in.has("timesteps")) config.timesteps = in.object<unlearn::TimestepSelectionConfig>("timesteps");
  if (in.has("frequency")) config.frequency = in.object<unlearn::FrequencySelectionConfig>("frequency");
  if (in.has("checkpoint_minutes")) config.trainer.checkpoint_seconds = 60.0 * in.number("checkpoint_minutes");
  return config;
}

// The node's run folders: unlearn-node-<id>[-N] in the output folder. The same run there
// resumes after a cancel (or is reused once finished); a changed input starts a new folder.
unlearn::RunPlacement node_run_placement(const NodeContext& context) {
  return {context.run_directory, "unlearn-node-" + io::file_name_part(context.node_id)};
}

// The lines shown under an unlearn node: which folder, and whether it trained, resumed or reused.
void report_run(NodeContext& context, const std::filesystem::path& directory, bool reused, const std::string& notice,
                const std::string& done) {
  if (!notice.empty()) context.texts.push_back(notice);
  const std::string folder = directory.filename().string();
  context.texts.push_back(reused ? str("reused the finished identical run in '", folder, "': ", done)
                                 : str(done, " (run folder '", folder, "')"));
}

// The datasets, erased prompt or erased CONDITIONING of an unlearn node.
unlearn::TaskData node_task_data(const NodeInputs& in) {
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
  return data;
}

// "a, b,c" -> {"a", "b", "c"} (blanks dropped).
std::vector<std::string> comma_list(const std::string& text) {
  std::vector<std::string> items;
  std::string item;
  for (size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == ',') {
      const size_t first = item.find_first_not_of(" \t\n"), last = item.find_last_not_of(" \t\n");
      if (first != std::string::npos) items.push_back(item.substr(first, last - first + 1));
      item.clear();
    } else {
      item += text[i];
    }
  }
  return items;
}

Value loss_curve_value(const std::filesystem::path& directory) {
  return image_value(data::read_image(directory / "loss.png", 3).unsqueeze(0));  // [1, 3, H, W]
}

void register_unlearn_node() {
  NodeSchema schema;
  schema.name = "LetheUnlearn";
  schema.display_name = "Lethe Unlearn";
  schema.category = "Lethe/unlearn";
  schema.description = "Masked unlearning training in native C++: the objective on the forget/retain (or anchor) data, "
                       "restricted by the optional timestep, frequency and spatial selections. Shows progress; Cancel "
                       "stops within one step and leaves a resumable checkpoint.";
  schema.inputs = {socket("model", types::kModel, "the model to unlearn (it is not modified; a copy is trained)"),
                   socket("objective", types::kObjective, "the objective (an objective node)")};
  for (auto& spec : training_inputs()) schema.inputs.push_back(spec);
  for (auto& spec : std::vector<InputSpec>{
           combo_input("trainable", {"full", "lora"}, "full", "train every UNet weight, or LoRA adapters only"),
           int_input("lora_rank", kLora.rank, 1, 256, "LoRA rank (trainable = lora)"),
           // Added after the first release: last among the widgets, so saved workflows keep their
           // widgets_values positions.
           float_input("retain_caption_dropout", kTrainer.retain_caption_dropout, 0.0, 0.99, 0.01,
                       "probability that a retain example trains the empty caption (keeps guidance's "
                       "unconditional branch as the base model had it)")})
    schema.inputs.push_back(spec);
  for (auto& spec : data_inputs()) schema.inputs.push_back(spec);
  schema.inputs.push_back(target_prompt_input());
  schema.inputs.push_back(target_conditioning_input());
  for (auto& spec : selection_inputs()) schema.inputs.push_back(spec);
  // Optional, so API-format prompts saved before it existed still validate; the frontend
  // places it after the required widgets, where saved UI workflows end.
  InputSpec checkpointing = bool_input("gradient_checkpointing", false,
                                       "recompute block activations in backward: less memory for large UNets, more "
                                       "compute");
  checkpointing.required = false;
  schema.inputs.push_back(checkpointing);
  // Optional for the same reason; absent = 0 (no EMA), as runs were before it existed.
  InputSpec ema = float_input("ema_decay", kTrainer.ema_decay, 0.0, 0.9999, 0.001,
                              "the result is the EMA of the trained weights with this decay (0 = off); the source "
                              "weights keep a share decay^steps, so use it for runs of 100+ steps (the bench default: "
                              "0.98 over 160 steps)");
  ema.required = false;
  schema.inputs.push_back(ema);
  schema.inputs.push_back(checkpoint_input());
  schema.outputs = {{"model", types::kModel, "the unlearned model"},
                    {"loss_curve", types::kImage, "the loss terms per step"},
                    {"summary", "STRING", "the run summary (JSON)"},
                    {"lora", types::kLora, "the trained adapters (trainable = lora) for Lethe Save LoRA"}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    auto model = in.object<std::shared_ptr<models::DiffusionModel>>("model");
    unlearn::RunConfig config = node_run_config(in);
    config.trainable = in.text("trainable");
    config.gradient_checkpointing = in.has("gradient_checkpointing") && in.flag("gradient_checkpointing");
    if (in.has("ema_decay")) config.trainer.ema_decay = in.number("ema_decay");
    unlearn::TaskData data = node_task_data(in);
    auto result = unlearn::run_unlearning(config, context.progress, model, &data, node_run_placement(context));
    context.files.push_back(result.model_file);
    report_run(context, result.directory, result.reused, result.notice,
               str(result.summary["steps"].get<int64_t>(), " steps in ",
                   static_cast<int>(result.summary["wall_seconds"].get<double>()), " s, peak memory ",
                   static_cast<int>(result.summary["peak_rss_mb"].get<double>()), " MB"));
    return std::vector<Value>{Value(types::kModel, result.model), loss_curve_value(result.directory),
                              json_value("STRING", result.summary.dump()),
                              Value(types::kLora, std::make_shared<LoraResult>(LoraResult{
                                                      result.lora_file, result.model->unet()->config(), "kohya"}))};
  });
}

void register_unlearn_host_node() {
  NodeSchema schema;
  schema.name = "LetheUnlearnHostModel";
  schema.display_name = "Lethe Unlearn (ComfyUI MODEL)";
  schema.category = "Lethe/unlearn";
  schema.description =
      "Unlearns a model ComfyUI loads (SD1.x/2.x-style: epsilon or v-prediction, discrete schedule, cross-attention "
      "conditioning) by training "
      "LoRA adapters on its own forward pass, driven by Lethe's native trainer. Datasets come from Lethe Dataset from "
      "Latents. Returns the patched MODEL (for KSampler) and the LoRA (for Lethe Save LoRA). ComfyUI only; slower "
      "than the native path (Python-side forward passes).";
  schema.inputs = {socket("model", types::kHostModel, "the ComfyUI MODEL to unlearn (not modified; a patched clone is returned)"),
                   socket("objective", types::kObjective, "the objective (an objective node)")};
  for (auto& spec : training_inputs()) schema.inputs.push_back(spec);
  const models::LoraConfig lora_defaults;
  for (auto& spec : std::vector<InputSpec>{
           int_input("lora_rank", kLora.rank, 1, 256, "LoRA rank"),
           float_input("retain_caption_dropout", kTrainer.retain_caption_dropout, 0.0, 0.99, 0.01,
                       "probability that a retain example trains the empty prompt (needs the retain set's "
                       "empty_conditioning)"),
           string_input("lora_targets", join(lora_defaults.targets),
                        "comma-separated suffixes of the linear layers to adapt (module paths of the MODEL)")})
    schema.inputs.push_back(spec);
  for (auto& spec : data_inputs()) schema.inputs.push_back(spec);
  schema.inputs.push_back(target_conditioning_input());
  for (auto& spec : selection_inputs()) schema.inputs.push_back(spec);
  schema.inputs.push_back(checkpoint_input());
  schema.outputs = {{"model", types::kHostModel, "the MODEL with the trained LoRA applied"},
                    {"loss_curve", types::kImage, "the loss terms per step"},
                    {"summary", "STRING", "the run summary (JSON)"},
                    {"lora", types::kLora, "the trained adapters for Lethe Save LoRA"}};
  register_node(schema, [](NodeContext& context, const NodeInputs& in) {
    auto host = in.object<std::shared_ptr<models::HostModel>>("model");
    unlearn::RunConfig config = node_run_config(in);
    config.lora.targets = comma_list(in.text("lora_targets"));
    check(!config.lora.targets.empty(), in.where("lora_targets"), ": expected at least one layer suffix, got '",
          in.text("lora_targets"), "'");
    unlearn::TaskData data = node_task_data(in);
    auto result = unlearn::run_host_unlearning(config, *host, data, context.progress, node_run_placement(context));
    auto patches = std::make_shared<ModelPatches>();
    patches->deltas = models::lora_weight_deltas(result.lora, "node " + context.node_id + " LoRA");
    report_run(context, result.directory, result.reused, result.notice,
               str(result.summary["steps"].get<int64_t>(), " steps in ",
                   static_cast<int>(result.summary["wall_seconds"].get<double>()), " s, ", patches->deltas.size(),
                   " layers adapted"));
    return std::vector<Value>{Value(types::kHostModel, patches), loss_curve_value(result.directory),
                              json_value("STRING", result.summary.dump()),
                              Value(types::kLora, std::make_shared<LoraResult>(
                                                      LoraResult{result.lora_file, models::UNetConfig{}, "comfy"}))};
  });
}

}  // namespace

void register_unlearn_nodes() {
  register_unlearn_node();
  register_unlearn_host_node();
}

}  // namespace lethe::graph::nodes
