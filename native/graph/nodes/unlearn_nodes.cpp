// The training nodes: unlearn a native model, or a ComfyUI MODEL through LoRA, with an
// objective, selections and data. The run is unlearn/run (folders, identity, resume).
#include <ATen/ATen.h>

#include "core/text.hpp"
#include "data/image.hpp"
#include "graph/nodes/node_groups.hpp"
#include "graph/nodes/node_helpers.hpp"
#include "io/output_path.hpp"
#include "models/diffusion_model.hpp"
#include "models/host_model.hpp"
#include "unlearn/run.hpp"

namespace lethe::graph::nodes {

namespace {

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
  if (in.has("timestep_sampling")) config.timestep_distribution.kind = in.text("timestep_sampling");
  return config;
}

// The node's run folders: unlearn-node-<id>[-N] in the output folder. The same run there
// resumes after a cancel (or is reused once finished); a changed input starts a new folder.
unlearn::RunPlacement node_run_placement(const NodeContext& context) {
  return {context.run_directory, "unlearn-node-" + io::file_name_part(context.node_id)};
}

// The lines shown under an unlearn node: which folder, and whether it trained, resumed or reused.
// (Result: unlearn::RunResult or HostRunResult.)
template <typename Result>
void report_run(NodeContext& context, const Result& result, const std::string& done) {
  if (!result.notice.empty()) context.texts.push_back(result.notice);
  const std::string folder = result.directory.filename().string();
  context.texts.push_back(result.reused ? str("reused the finished identical run in '", folder, "': ", done)
                                        : str(done, " (run folder '", folder, "')"));
}

std::string steps_and_time(const nlohmann::json& summary) {
  return str(summary["steps"].get<int64_t>(), " steps in ", static_cast<int>(summary["wall_seconds"].get<double>()), " s");
}

// What a run trains on: the model's parameterisation and noise levels (ComfyUI's sigmas), how
// training draws t, and the forget window of a timestep selection (when given) in those levels.
std::vector<std::string> schedule_lines(const std::string& what, const diffusion::NoiseSchedule& schedule,
                                        const diffusion::TimestepDistributionConfig& drawn,
                                        const unlearn::TimestepSelectionConfig* window) {
  const at::Tensor levels = schedule.noise_levels();  // [T]; the run checked the window's t_max <= T
  const std::string& type = schedule.config().prediction_type;
  const std::string kind = type == "flow"           ? "flow matching (velocity)"
                           : type == "v_prediction" ? "v-prediction"
                           : type == "sample"       ? "x0 prediction"
                                                    : "epsilon prediction";
  std::vector<std::string> lines = {str(what, ": ", kind, ", noise levels sigma ", levels[0].item<double>(), " .. ",
                                        levels[-1].item<double>(), " over ", levels.size(0), " timesteps"),
                                    str("timesteps drawn ", diffusion::TimestepDistribution(drawn, schedule).describe())};
  if (window != nullptr) {
    const unlearn::TimestepSelectionConfig resolved = unlearn::resolve_window(*window, schedule);
    lines.push_back(str("forget window ",
                        window->in_sigma() ? str("sigma [", window->sigma_min, ", ", window->sigma_max, "] = ") : "", "t [",
                        resolved.t_min, ", ", resolved.t_max, "): noise levels sigma ", levels[resolved.t_min].item<double>(),
                        " .. ", levels[resolved.t_max - 1].item<double>()));
  }
  return lines;
}

// The datasets, erased prompt or erased CONDITIONING of an unlearn node.
unlearn::TaskData node_task_data(const NodeInputs& in) {
  unlearn::TaskData data;
  if (in.has("forget")) data.forget = *in.object<DatasetPtr>("forget");
  if (in.has("retain")) data.retain = *in.object<DatasetPtr>("retain");
  if (in.has("anchor")) data.anchor = *in.object<DatasetPtr>("anchor");
  if (in.has("target_prompt") && !in.text("target_prompt").empty()) data.target_captions = {in.text("target_prompt")};
  if (in.has("target_conditioning")) {
    // Sizes default to the images it is trained on (the anchor set's, else the forget set's).
    const unlearn::ExampleSet& images = !data.anchor.empty() ? data.anchor : data.forget;
    const double height = images.empty() ? 0.0 : kPixelsPerLatent * static_cast<double>(images.images.size(2));
    const double width = images.empty() ? 0.0 : kPixelsPerLatent * static_cast<double>(images.images.size(3));
    data.target_conditioning = host_conditioning(in, "target_conditioning", height, width);
  }
  for (unlearn::ExampleSet* set : {&data.forget, &data.retain, &data.anchor})
    if (!set->empty()) set->validate();
  return data;
}

// The run's outputs after the model: loss curve, summary, LoRA.
template <typename Result>
std::vector<Value> run_outputs(Value model, const Result& result, LoraResult lora) {
  return {std::move(model), image_value(data::read_image(result.directory / "loss.png", 3).unsqueeze(0)),  // [1, 3, H, W]
          json_value("STRING", result.summary.dump()), Value(types::kLora, std::make_shared<LoraResult>(std::move(lora)))};
}

std::vector<Value> unlearn_model(NodeContext& context, const NodeInputs& in) {
  auto model = in.object<std::shared_ptr<models::DiffusionModel>>("model");
  unlearn::RunConfig config = node_run_config(in);
  config.trainable = in.text("trainable");
  config.gradient_checkpointing = in.has("gradient_checkpointing") && in.flag("gradient_checkpointing");
  if (in.has("ema_decay")) config.trainer.ema_decay = in.number("ema_decay");
  if (in.has("precision")) config.precision = in.text("precision");
  unlearn::TaskData data = node_task_data(in);
  auto result =
      unlearn::run_unlearning(config, context.progress, model, &data, node_run_placement(context), context.group);
  context.files.push_back(result.model_file);
  report_run(context, result,
             // ru_maxrss is the process's: inside ComfyUI that includes ComfyUI and every model it holds.
             str(steps_and_time(result.summary), ", process peak RSS ",
                 static_cast<int>(result.summary["peak_rss_mb"].get<double>()), " MB (the whole process, not this node alone)"));
  for (std::string& line : schedule_lines("model", model->schedule(), config.timestep_distribution,
                                          in.has("timesteps") ? &config.timesteps : nullptr))
    context.texts.push_back(std::move(line));
  return run_outputs(Value(types::kModel, result.model), result,
                     {result.lora_file, result.model->unet()->config(), "kohya"});
}

std::vector<Value> unlearn_host_model(NodeContext& context, const NodeInputs& in) {
  auto host = in.object<std::shared_ptr<models::HostModel>>("model");
  unlearn::RunConfig config = node_run_config(in);
  config.lora.targets = comma_list(in.text("lora_targets"));
  check(!config.lora.targets.empty(), in.where("lora_targets"), ": expected at least one layer suffix, got '",
        in.text("lora_targets"), "'");
  config.gradient_checkpointing = in.has("gradient_checkpointing") && in.flag("gradient_checkpointing");
  unlearn::TaskData data = node_task_data(in);
  auto result = unlearn::run_host_unlearning(config, *host, data, context.progress, node_run_placement(context));
  auto patches = std::make_shared<ModelPatches>();
  patches->deltas = models::lora_weight_deltas(result.lora, "node " + context.node_id + " LoRA");
  report_run(context, result, str(steps_and_time(result.summary), ", ", patches->deltas.size(), " layers adapted"));
  for (std::string& line : schedule_lines("MODEL", host->info().schedule, config.timestep_distribution,
                                          in.has("timesteps") ? &config.timesteps : nullptr))
    context.texts.push_back(std::move(line));
  return run_outputs(Value(types::kHostModel, patches), result, {result.lora_file, models::UNetConfig{}, "comfy"});
}

}  // namespace

void register_unlearn_nodes() {
  register_table_node("LetheUnlearn", unlearn_model);
  register_table_node("LetheUnlearnHostModel", unlearn_host_model);
}

}  // namespace lethe::graph::nodes
