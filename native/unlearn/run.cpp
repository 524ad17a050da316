#include "unlearn/run.hpp"
#include "models/lora_kohya.hpp"

#include <chrono>
#include <cstdio>
#include <set>

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "core/runtime.hpp"
#include "data/image_folder.hpp"
#include "dist/group.hpp"
#include "draw/canvas.hpp"
#include "io/atomic_file.hpp"
#include "io/hash.hpp"
#include "io/output_path.hpp"
#include "io/set_override.hpp"
#include "models/unet.hpp"
#include "unlearn/caption_variants.hpp"
#include "unlearn/presets.hpp"
#include "unlearn/run_identity.hpp"

namespace lethe::unlearn {

namespace fs = std::filesystem;

void DataConfig::validate(const std::string& where) const {
  check(!preset.empty(), where, ".preset: expected the name of a data preset (", join(data_preset_names()), ")");
  check(task == "data" || task == "concept", where, ".task: expected data or concept, got '", task, "'");
  check(retain_limit >= 0, where, ".retain_limit: expected >= 0");
}

void RunConfig::validate(const std::string& where) const {
  data.validate(where + ".data");
  check(trainable == "full" || trainable == "lora" || trainable == "cross_attention_kv", where,
        ".trainable: expected full, lora or cross_attention_kv, got '", trainable, "'");
  timesteps.validate(where + ".timesteps");
  frequency.validate(where + ".frequency");
  timestep_distribution.validate(where + ".timestep_distribution");
  trainer.validate(where + ".trainer");
  lora.validate(where + ".lora");
  parse_precision(precision, where + ".precision");
  check(snapshot_every >= 0, where, ".snapshot_every: expected >= 0, got ", snapshot_every);
  check(snapshot_every == 0 || trainable != "lora", where,
        ".snapshot_every: snapshots need whole-model training (LoRA runs save their adapters at the end), got trainable = ",
        trainable);
}


namespace {

ExampleSet folder_set(const std::string& folder, const std::string& role, const models::DiffusionModel& model,
                      bool resize, bool captions_optional) {
  data::ImageFolderOptions options;
  options.role = role;
  options.channels = static_cast<int>(model.unet()->config().in_channels);
  options.resize = resize;
  data::ImageSet images = data::load_image_folder(folder, options);
  ExampleSet set = example_set_from_images(images, str(role, " '", folder, "'"));
  set.captions_optional = captions_optional || !model.has_text_encoder();  // an unconditional model reads none
  set.validate();
  set.check_captions();
  return set;
}

// Checked before the run starts, not at the first batch that trips over it, with the set and
// file named: image sizes the UNet can take, and captions its text encoder can read.
void check_data_fits_model(const TaskData& data, models::DiffusionModel& model) {
  const int64_t multiple = model.unet()->config().size_multiple();
  for (const ExampleSet* set : {&data.forget, &data.retain, &data.anchor}) {
    if (set->empty()) continue;
    const auto file = [&](size_t i) {
      return i < set->names.size() ? str("'", set->names[i], "'") : str("example ", i);
    };
    const int64_t height = set->images.size(2), width = set->images.size(3);
    check(height % multiple == 0 && width % multiple == 0, "unlearning run: the ", set->name, "'s images are ", width,
          "x", height, " (e.g. ", file(0), "); this UNet needs a width and height divisible by ", multiple,
          ": resize them, or let the loader resize them");
    if (!model.has_text_encoder()) continue;
    std::set<std::string> read;  // sets repeat their captions
    for (size_t i = 0; i < set->captions.size(); ++i) {
      if (set->captions[i].empty() || !read.insert(set->captions[i]).second) continue;  // empty: check_captions decided
      try {
        model.text_encoder()->tokenize(all_caption_variants(set->captions[i]));  // each {a|b} alternative
      } catch (const Error& e) {
        throw Error(str("unlearning run: the ", set->name, ", caption of ", file(i), ": ", e.what()));
      }
    }
  }
}

}  // namespace

void limit_retain(TaskData& data, int64_t limit) {
  if (limit <= 0 || data.retain.size() <= limit) return;
  std::vector<int64_t> first(static_cast<size_t>(limit));
  for (int64_t i = 0; i < limit; ++i) first[i] = i;
  data.retain = data.retain.subset(first, data.retain.name);
}

TaskData load_task_data(const DataConfig& config, const models::DiffusionModel& model) {
  config.validate("data");
  return data_preset(config.preset, "data.preset")(config, model);
}

TaskData folder_task_data(const DataConfig& config, const models::DiffusionModel& model) {
  TaskData data;
  auto load = [&](const std::string& folder, const char* role) {
    return folder_set(folder, role, model, config.resize, config.captions_optional);
  };
  if (!config.forget_folder.empty()) data.forget = load(config.forget_folder, "forget set");
  if (!config.retain_folder.empty()) data.retain = load(config.retain_folder, "retain set");
  if (!config.anchor_folder.empty()) data.anchor = load(config.anchor_folder, "anchor set");
  data.target_captions = config.target_captions;
  limit_retain(data, config.retain_limit);
  return data;
}

void draw_loss_curves(const std::vector<LossTerms>& history, const fs::path& png, const std::string& title) {
  std::map<std::string, std::vector<double>> curves;
  for (const auto& terms : history)
    for (const auto& [name, value] : terms)
      if (name != "lr" && name.find("accuracy") == std::string::npos && name != "tau" && name != "forget_share")
        curves[name].push_back(value);
  std::vector<draw::Series> series;
  for (auto& [name, values] : curves) series.push_back({name, values, {}});
  const int panels = static_cast<int>(series.size());
  draw::Canvas canvas(760, std::max(1, panels) * 220 + 20);
  for (int i = 0; i < panels; ++i)
    draw::draw_line_chart(canvas, {10, 10 + i * 220, 740, 210}, i == 0 ? title + ": " + series[i].label : series[i].label,
                          {series[i]}, "step", false);
  canvas.save_png(png);
}

namespace {

void draw_selections(const TimestepSelection& timesteps, const FrequencySelection& frequency, int64_t height, int64_t width,
                     const fs::path& directory) {
  draw::Canvas canvas(900, 300);
  std::vector<double> weights(timesteps.table().data_ptr<float>(), timesteps.table().data_ptr<float>() + timesteps.table().numel());
  draw::draw_line_chart(canvas, {10, 10, 560, 280}, "forget weight over t (timestep selection)", {{"m(t)", weights, {}}}, "t");
  canvas.text(frequency.time_dependent() ? "frequency mask at t = 0 | t = T-1" : "frequency mask (centre = DC)", 600, 16,
              14, draw::colors::black, true);
  const at::Tensor mask = frequency.preview(height, width);  // [1, H, W'] with W' = W or 2W + 2
  const int scale = std::max(1, static_cast<int>(280 / std::max(height, mask.size(2))));
  canvas.paste(mask, 600, 44, scale);
  canvas.text(frequency.describe(), 600, 44 + static_cast<int>(height) * scale + 6, 12);
  canvas.save_png(directory / "selections.png");
}

}  // namespace

namespace {

// A run's folder, locked against other processes for as long as the run holds it.
struct RunFolder {
  fs::path directory;
  io::FolderLock lock;
  bool finished = false;  // holds this same run, finished: its result is reused
  std::string notice;
};

// The identity recorded in `folder`, or null when it has none (or it cannot be read).
nlohmann::json saved_identity(const fs::path& folder) {
  const fs::path file = folder / "identity.json";
  if (!fs::exists(file)) return nullptr;
  try {
    return io::read_json_file(file);
  } catch (const Error&) {
    return "unreadable";
  }
}

RunFolder explicit_folder(RunConfig& config, const nlohmann::json& identity, const std::string& where) {
  if (config.output.empty()) config.output = io::claim_numbered_folder("out", "unlearn-" + timestamp()).string();
  RunFolder folder;
  folder.directory = config.output;
  check(!fs::exists(folder.directory) || fs::is_directory(folder.directory), where, ": output folder '",
        folder.directory.string(), "' is a file, expected a folder");
  folder.lock = io::FolderLock(folder.directory);
  check(folder.lock.held(), where, ": output folder '", folder.directory.string(),
        "' is in use by another Lethe process; wait for it to finish or choose another output folder");
  // Under the lock: a folder without a run of Lethe's in it must be empty, for what it holds is not
  // Lethe's to overwrite.
  if (!fs::exists(folder.directory / "identity.json") && !fs::exists(folder.directory / "checkpoint.safetensors"))
    io::require_empty_folder(folder.directory, where + ": output folder", "choose a new or empty output folder");
  const nlohmann::json saved = saved_identity(folder.directory);
  if (!saved.is_null()) {
    const auto differences = identity_differences(saved, identity);
    check(differences.empty(), where, ": output folder '", folder.directory.string(),
          "' holds a different run (it differs in: ", join(differences),
          "); choose another output folder, or delete that one to start over");
  }
  check(!fs::exists(folder.directory / "summary.json"), where, ": output folder '", folder.directory.string(),
        "' already holds a finished run; choose another output folder (nothing is overwritten)");
  check(!saved.is_null() || !fs::exists(folder.directory / "checkpoint.safetensors"), where, ": output folder '",
        folder.directory.string(), "' holds a checkpoint but no identity.json (written by an older Lethe); choose "
        "another output folder, or delete that one to start over");
  if (saved.is_null()) io::write_json_file(folder.directory / "identity.json", identity);
  return folder;
}

RunFolder numbered_folder(const RunPlacement& placement, const nlohmann::json& identity) {
  RunFolder folder;
  std::string skipped;
  for (int index = 1;; ++index) {
    const fs::path directory = placement.root / (index == 1 ? placement.stem : str(placement.stem, "-", index));
    io::check_inside(placement.root, directory, "unlearning run folder");
    const bool created = io::claim_directory(directory);
    io::FolderLock lock(directory);
    if (!lock.held()) continue;  // another process is running there
    const nlohmann::json saved = saved_identity(directory);
    // Free: just made, or left empty by a process that died before it recorded its run.
    const bool unused = saved.is_null() && io::first_entry(directory).empty();
    if (created || unused) {
      io::write_json_file(directory / "identity.json", identity);
    } else if (saved != identity) {
      if (skipped.empty())
        skipped = str("'", directory.filename().string(), "' holds a different run (",
                      saved.is_null() ? "no identity.json" : "it differs in: " + join(identity_differences(saved, identity, 3)),
                      ")");
      continue;
    }
    folder.directory = directory;
    folder.lock = std::move(lock);
    folder.finished = fs::exists(directory / "summary.json");
    if (!skipped.empty()) folder.notice = str(skipped, "; started this run fresh in '", directory.filename().string(), "'");
    return folder;
  }
}

RunFolder open_run_folder(RunConfig& config, const nlohmann::json& identity, const RunPlacement& placement,
                          const std::string& where) {
  if (placement.root.empty()) return explicit_folder(config, identity, where);
  RunFolder folder = numbered_folder(placement, identity);
  config.output = folder.directory.string();
  return folder;
}

// A data-parallel run's folder: rank 0 opens (and locks) it as one process would; the others
// take its place from rank 0 and only read there. Every rank must hold the same run.
RunFolder open_shared_run_folder(RunConfig& config, const nlohmann::json& identity, const RunPlacement& placement,
                                 const std::string& where, const dist::Group& group) {
  RunFolder folder;
  nlohmann::json shared;
  if (group.leader()) {
    folder = open_run_folder(config, identity, placement, where);
    shared = {{"directory", folder.directory.string()}, {"finished", folder.finished}, {"notice", folder.notice},
              {"identity", identity}};
  }
  shared = nlohmann::json::parse(group.broadcast_text(shared.dump(), "sharing the run folder"));
  if (group.leader()) return folder;
  check(shared.at("identity") == identity, where, ", rank ", group.rank(), ": this rank's run differs from rank 0's in ",
        join(identity_differences(shared.at("identity"), identity, 3)),
        "; every rank must be started with the same config, model and data");
  folder.directory = shared.at("directory").get<std::string>();
  folder.finished = shared.at("finished").get<bool>();
  folder.notice = shared.at("notice").get<std::string>();
  config.output = folder.directory.string();
  return folder;
}

// The run's objective, checked against the data it needs.
std::unique_ptr<Objective> checked_objective(const RunConfig& config, const TaskData& data) {
  auto objective = make_objective(config.objective, config.objective_config, "objective " + config.objective);
  check(!objective->needs_forget() || !data.forget.empty(), "objective '", config.objective, "' needs a forget set");
  check(!objective->needs_retain() || !data.retain.empty(), "objective '", config.objective, "' needs a retain set");
  check(!objective->needs_anchor() || !data.anchor.empty(), "objective '", config.objective,
        "' needs an anchor set (concept task)");
  return objective;
}

// The run's config with every default filled in and the objective's resolved settings, as
// the run folder's config.json.
void write_resolved_config(const RunConfig& config, const Objective& objective, const fs::path& directory) {
  nlohmann::json resolved = io::to_json(config);
  resolved["objective_config"] = objective.config_json();
  io::write_json_file(directory / "config.json", resolved);
}

// Trains `parameters` of context.model (model, reference, schedule, data and caption encoder
// already set in `context`) with the run's selections; writes the selection pictures, the
// resolved config and the loss curves into `directory`.
TrainOutcome train(const RunConfig& config, Objective& objective, ObjectiveContext& context,
                   const NamedTensors& parameters, const fs::path& directory, const nlohmann::json& identity,
                   const ProgressCallback& progress) {
  const diffusion::TimestepDistribution distribution(config.timestep_distribution, *context.schedule);
  TimestepSelection timesteps(config.timesteps, *context.schedule, &distribution);
  FrequencySelection frequency(config.frequency);
  context.distribution = &distribution;
  context.timesteps = &timesteps;
  context.frequency = &frequency;
  const TaskData& data = *context.data;
  // The selections' pictures at the size of the data they act on (naive deletion has only a retain set).
  const ExampleSet& shown = !data.forget.empty() ? data.forget : !data.anchor.empty() ? data.anchor : data.retain;
  const bool writes = dist::writes_files(context.group);  // a data-parallel run's files are rank 0's
  if (writes) {
    draw_selections(timesteps, frequency, shown.images.size(2), shown.images.size(3), directory);
    write_resolved_config(config, objective, directory);
  }

  Trainer trainer(config.trainer, parameters, objective, context);
  trainer.set_run_identity(identity);
  TrainOutcome outcome = trainer.run(directory / "checkpoint.safetensors", progress);
  trainer.apply_ema();  // with trainer.ema_decay > 0 the run's result is the EMA weights (snapshots stay raw)
  context.timesteps = nullptr;
  context.distribution = nullptr;
  context.frequency = nullptr;
  if (writes) draw_loss_curves(outcome.history, directory / "loss.png", config.objective);
  return outcome;
}

// Provenance written into the run's model and LoRA files.
io::Metadata run_metadata(const RunConfig& config, const Objective& objective, const TrainOutcome& outcome,
                          const std::string& source_path, const std::string& source_sha256) {
  return {{"objective", config.objective},
          {"objective_config", objective.config_json().dump()},
          {"timesteps", io::to_json(config.timesteps).dump()},
          {"frequency", io::to_json(config.frequency).dump()},
          {"trainable", config.trainable},
          {"steps", std::to_string(outcome.steps_done)},
          {"seed", std::to_string(config.trainer.seed)},
          {"source_model", source_path},
          {"source_model_sha256", source_sha256}};
}

// The LoRA file's metadata: the run's plus the adapter config and kohya's network keys.
io::Metadata lora_metadata(const RunConfig& config, io::Metadata metadata, const std::string& format) {
  metadata["lora_config"] = io::to_json(config.lora).dump();
  metadata["lethe.lora_format"] = format;
  metadata["ss_network_dim"] = std::to_string(config.lora.rank);
  metadata["ss_network_alpha"] = std::to_string(config.lora.alpha);
  return metadata;
}

// Writes summary.json (the mark of a finished run), then removes the checkpoint.
nlohmann::json finish_run(const RunConfig& config, const TrainOutcome& outcome, const fs::path& directory,
                          const std::map<std::string, std::string>& files,
                          const nlohmann::json& extra = nlohmann::json::object()) {
  nlohmann::json summary;
  summary["objective"] = config.objective;
  summary["steps"] = outcome.steps_done;
  summary["samples_seen"] = outcome.steps_done * config.trainer.batch_size * config.trainer.gradient_accumulation;
  summary["wall_seconds"] = outcome.total_seconds;
  summary["seconds_per_step"] = outcome.steps_done > 0 ? outcome.total_seconds / outcome.steps_done : 0.0;
  summary["resumed"] = outcome.resumed;
  summary["final_terms"] = outcome.history.empty() ? nlohmann::json::object() : nlohmann::json(outcome.history.back());
  summary["first_terms"] = outcome.history.empty() ? nlohmann::json::object() : nlohmann::json(outcome.history.front());
  summary["gradient_checkpointing"] = config.gradient_checkpointing;
  summary["precision"] = {{"requested", config.precision}, {"used", precision_name(current_precision())}};
  summary["peak_rss_mb"] = static_cast<double>(peak_rss_bytes()) / (1024.0 * 1024.0);  // the process's, so far
  const MachineFacts machine = machine_facts();  // what wall_seconds depends on
  summary["machine"] = {{"cpu", machine.cpu}, {"threads", machine.threads}, {"flush_denormals", machine.flush_denormals},
                        {"freed_memory_kept", machine.freed_memory_kept}};
  for (const auto& [name, path] : files) summary[name] = path;
  summary.update(extra);
  io::write_json_file(directory / "summary.json", summary);
  std::error_code ignored;
  fs::remove(directory / "checkpoint.safetensors", ignored);
  return summary;
}

}  // namespace

namespace {

// Saves a run's result file; on failure the message says where the trained state is kept.
void save_result(const std::function<void()>& save, const fs::path& file, const fs::path& directory) {
  try {
    save();
  } catch (const Error& e) {
    throw Error(str("unlearning run: could not save '", file.string(), "': ", e.what(), "; the trained state is kept in '",
                    (directory / "checkpoint.safetensors").string(),
                    "': run the same command again to save it without training again"));
  }
}

// Makes the saved `file` (with `metadata`) the model's source.
void adopt_saved_model(models::DiffusionModel& model, const io::Metadata& metadata, const fs::path& file) {
  model.set_requires_grad(false);
  model.source_path = file.string();
  model.source_sha256 = io::sha256_file(file);
  model.source_metadata = metadata;
}

// Saves the run's model with its provenance and makes that file the model's source.
void save_run_model(models::DiffusionModel& model, const io::Metadata& metadata, const fs::path& file,
                    const fs::path& directory) {
  model.set_requires_grad(false);
  save_result([&] { model.save(file, metadata); }, file, directory);
  adopt_saved_model(model, metadata, file);
}

// A data-parallel run's ranks and what rank 0's collectives moved in this process (a resumed run
// counts from the resume): calls, bytes and seconds per kind, and the gradient buckets whose sums
// overlapped the backward (docs/distributed.md).
nlohmann::json distributed_summary(const dist::Group& group, const TrainOutcome& outcome) {
  nlohmann::json collectives = nlohmann::json::object();
  for (const auto& [kind, traffic] : group.traffic())
    collectives[kind] = {{"calls", traffic.calls}, {"bytes", traffic.bytes}, {"seconds", traffic.seconds}};
  nlohmann::json summary = {{"ranks", group.size()}, {"timeout_seconds", group.timeout_seconds()},
                            {"collectives", collectives}};
  if (!outcome.gradient_buckets.is_null()) summary["gradient_buckets"] = outcome.gradient_buckets;
  return summary;
}

// A data-parallel run's other ranks, once rank 0 has saved the result: the same model (theirs
// in memory equals rank 0's), with rank 0's file as its source and rank 0's summary.
void adopt_leader_result(const dist::Group& group, models::DiffusionModel& model, const io::Metadata& metadata,
                         RunResult& result) {
  group.barrier("waiting for rank 0 to save the result");
  if (group.leader()) return;
  adopt_saved_model(model, metadata, result.model_file);
  result.summary = io::read_json_file(result.directory / "summary.json");
}

}  // namespace

RunConfig run_config_from(const std::string& config_file, const std::vector<std::string>& overrides,
                          const std::string& out) {
  nlohmann::json json = config_file.empty() ? nlohmann::json::object() : io::read_json_file(config_file);
  // The file's own mistakes name the file; what only the overrides got wrong names --set.
  RunConfig config = io::merge_config(RunConfig{}, json, config_file.empty() ? "run config" : config_file);
  if (overrides.empty() && out.empty()) return config;
  for (const auto& assignment : overrides) io::apply_config_override(json, assignment);
  if (!out.empty()) json["output"] = out;
  return io::merge_config(RunConfig{}, json, "--set");
}

RunResult run_unlearning(const RunConfig& input, const ProgressCallback& progress,
                         std::shared_ptr<models::DiffusionModel> model, const TaskData* given_data,
                         const RunPlacement& placement, const dist::Group* group) {
  const bool parallel = dist::spans_ranks(group);
  const bool writes = dist::writes_files(group);  // a data-parallel run's files are rank 0's
  RunConfig config = input;
  if (config.model.empty() && !model) config.model = default_model_path().string();
  check(!config.model.empty() || model, "unlearning run: no model given (the config's 'model' is empty and no default "
        "model is registered)");
  config.validate("unlearning run");
  if (!config.model.empty() && !config.output.empty() && fs::exists(config.model))
    check(fs::weakly_canonical(config.model).parent_path() != fs::weakly_canonical(config.output) ||
              fs::path(config.model).filename() != "model.safetensors",
          "unlearning run: the output folder '", config.output, "' would overwrite the input model");

  std::shared_ptr<models::DiffusionModel> source = model ? model : models::DiffusionModel::load(config.model);
  TaskData data = given_data ? *given_data : load_task_data(config.data, *source);
  if (source->has_text_encoder())  // the same caption rule for data from nodes as from folders
    for (const ExampleSet* set : {&data.forget, &data.retain, &data.anchor})
      if (!set->empty()) set->check_captions();
  check_data_fits_model(data, *source);
  if (const int64_t adm = source->unet()->config().adm_in_channels; adm > 0) {  // SDXL: y from pooled output and sizes
    for (const ExampleSet* set : {&data.forget, &data.retain, &data.anchor})
      check(set->empty() || set->conditioning.has_vector(), "unlearning run: the ", set->name,
            " has no pooled text embeddings, but this SDXL-layout UNet needs them for its ", adm,
            "-wide y; make the set with Lethe Dataset from Latents from the SDXL checkpoint's CLIPTextEncode");
    check(data.target_captions.empty() || data.target_conditioning.has_vector(),
          "unlearning run: this SDXL-layout UNet needs the erased concept as CONDITIONING (target_conditioning) from "
          "its own CLIP, not as a caption");
  }
  auto objective = checked_objective(config, data);
  const ResolvedPrecision precision = resolve_precision(config.precision, "unlearning run .precision", source->device());
  const PrecisionScope precision_scope(precision.precision);  // every forward of this run, the frozen copies' included
  const nlohmann::json identity = run_identity(config, source->weights_sha256(), task_data_sha256(data),
                                               objective->config_json(), precision.precision);
  RunFolder folder = parallel ? open_shared_run_folder(config, identity, placement, "unlearning run", *group)
                              : open_run_folder(config, identity, placement, "unlearning run");
  const fs::path directory = folder.directory;

  RunResult result;
  result.directory = directory;
  result.notice = folder.notice;
  result.model_file = directory / "model.safetensors";
  if (folder.finished) {  // this same run finished before: its result, not a second training
    result.reused = true;
    result.model = models::DiffusionModel::load(result.model_file);
    result.summary = io::read_json_file(directory / "summary.json");
    if (fs::exists(directory / "lora.safetensors")) result.lora_file = directory / "lora.safetensors";
    return result;
  }

  // The run trains a copy; the input stays untouched. A LoRA run trains adapters only and merges
  // them out of place, so its copy shares the input's weights, as the frozen reference does.
  using Weights = models::DiffusionModel::Weights;
  const bool adapters_only = config.trainable == "lora" && !objective->edits_in_closed_form();
  auto trained = source->frozen_copy(adapters_only ? Weights::shared : Weights::copied);
  trained->source_path = source->source_path;
  trained->source_sha256 = source->source_sha256;
  trained->unet()->gradient_checkpointing = config.gradient_checkpointing;
  std::shared_ptr<models::DiffusionModel> reference;
  if (objective->needs_reference()) reference = source->frozen_copy(Weights::shared);

  if (objective->edits_in_closed_form()) {  // UCE: one edit of the copy, no training
    write_resolved_config(config, *objective, directory);
    const auto started = std::chrono::steady_clock::now();
    const nlohmann::json report = objective->edit(*trained, data);
    TrainOutcome outcome;
    outcome.finished = true;
    outcome.total_seconds = outcome.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    const io::Metadata metadata = run_metadata(config, *objective, outcome, source->source_path, source->source_sha256);
    if (writes) {
      save_run_model(*trained, metadata, result.model_file, directory);
      result.summary = finish_run(config, outcome, directory, {{"model_file", result.model_file.string()}}, {{"edit", report}});
    }
    if (parallel) adopt_leader_result(*group, *trained, metadata, result);
    result.model = trained;
    return result;
  }

  ObjectiveContext context;
  context.group = parallel ? group : nullptr;
  context.model = trained.get();
  context.reference = reference.get();
  context.schedule = &trained->schedule();
  context.data = &data;
  if (trained->has_text_encoder())
    context.encode_captions = [trained](const std::vector<std::string>& captions) { return trained->context_for(captions); };

  NamedTensors parameters;
  std::unique_ptr<models::LoraSet> lora;
  if (config.trainable == "lora") {
    lora = std::make_unique<models::LoraSet>(*trained->unet(), config.lora, config.lora_seed());
    parameters = lora->parameters();
  } else {
    trained->unet()->train();
    for (const auto& item : trained->unet()->named_parameters()) {
      const bool trains = config.trainable == "full" || models::is_cross_attention_key(item.key()) ||
                          models::is_cross_attention_value(item.key());
      item.value().set_requires_grad(trains);
      if (trains) parameters.emplace_back("diffusion_model." + item.key(), item.value());
    }
    check(!parameters.empty(), "run config .trainable = cross_attention_kv: the model has no cross-attention "
                               "key/value projections (attn2.to_k, attn2.to_v); use full or lora");
  }

  // Snapshots (for "steps to reach a target" curves): the weights after every k-th step.
  ProgressCallback on_step = progress;
  if (config.snapshot_every > 0 && writes) {
    on_step = [&, progress](const ProgressEvent& event) {
      if (progress) progress(event);
      if (event.stage == "train" && event.step > 0 && event.step % config.snapshot_every == 0 &&
          event.step < config.trainer.steps) {
        char name[40];
        std::snprintf(name, sizeof(name), "step-%05lld.safetensors", static_cast<long long>(event.step));
        fs::create_directories(directory / "snapshots");
        at::NoGradGuard no_grad;
        trained->save(directory / "snapshots" / name,
                      {{"objective", config.objective}, {"steps", std::to_string(event.step)},
                       {"source_model_sha256", source->source_sha256}});
      }
    };
  }
  TrainOutcome outcome = train(config, *objective, context, parameters, directory, identity, on_step);

  io::Metadata metadata = run_metadata(config, *objective, outcome, source->source_path, source->source_sha256);
  std::map<std::string, std::string> files;
  if (lora) {
    result.lora_file = directory / "lora.safetensors";
    // Kohya names (lora_unet_<diffusers path>): what ComfyUI's LoraLoader, A1111 and kohya load.
    if (writes)
      save_result([&] { io::save_safetensors(result.lora_file, models::to_kohya(lora->tensors(), trained->unet()->config()),
                                             lora_metadata(config, metadata, "kohya")); },
                  result.lora_file, directory);
    lora->merge();
    files["lora_file"] = result.lora_file.string();
  }
  files["model_file"] = result.model_file.string();
  if (writes) {
    save_run_model(*trained, metadata, result.model_file, directory);
    result.summary = finish_run(config, outcome, directory, files,
                                parallel ? nlohmann::json{{"distributed", distributed_summary(*group, outcome)}}
                                         : nlohmann::json::object());
  }
  if (parallel) adopt_leader_result(*group, *trained, metadata, result);
  result.model = trained;
  return result;
}

namespace {

// The task data's SHA-256 with what the host attaches to its contexts (ComfyUI's CONDITIONING
// values), so a changed guidance or pooled output is another run.
std::string host_task_data_sha256(models::HostModel& model, const TaskData& data) {
  const std::string tensors = task_data_sha256(data);
  if (!model.conditioning_sha256) return tensors;
  std::vector<at::Tensor> contexts;
  for (const ExampleSet* set : {&data.forget, &data.retain, &data.anchor})
    for (const models::Conditioning* conditioning : {&set->conditioning, &set->empty_conditioning})
      if (conditioning->defined()) contexts.push_back(conditioning->context);
  if (data.target_conditioning.defined()) contexts.push_back(data.target_conditioning.context);
  const std::string attached = model.conditioning_sha256(contexts);
  if (attached.empty()) return tensors;
  io::Sha256 hash;
  hash.update(std::string_view(tensors));
  hash.update(std::string_view(attached));
  return hash.hex();
}

}  // namespace

HostRunResult run_host_unlearning(const RunConfig& input, models::HostModel& model, const TaskData& data,
                                  const ProgressCallback& progress, const RunPlacement& placement) {
  RunConfig config = input;
  config.trainable = "lora";
  const std::string where = "unlearning run (" + model.description + ")";
  config.validate(where);
  for (const ExampleSet* set : {&data.forget, &data.retain, &data.anchor})
    check(set->empty() || set->conditioning.defined(), where, ": the ", set->name,
          " has captions but no CONDITIONING; a host model needs datasets made with Lethe Dataset from Latents");
  check(data.target_captions.empty() || data.target_conditioning.defined(), where,
        ": the erased concept must come as CONDITIONING (target_conditioning), not as a caption");
  check(static_cast<bool>(model.fingerprint), where, ": the host gave no fingerprint of its weights");
  auto objective = checked_objective(config, data);
  // A host that computes in fp16 trains with loss scaling, as a native fp16 run does (the trainer
  // reads the scope); the identity says so, so such a run never resumes an unscaled one.
  const c10::ScalarType host_dtype = model.info().compute_dtype;
  const Precision host_precision = host_dtype == at::kHalf ? Precision::fp16 : Precision::fp32;
  const PrecisionScope precision_scope(host_precision);
  const nlohmann::json identity = run_identity(config, model.fingerprint(), host_task_data_sha256(model, data),
                                               objective->config_json(), host_precision);
  RunFolder folder = open_run_folder(config, identity, placement, where);
  const fs::path directory = folder.directory;

  HostRunResult result;
  result.directory = directory;
  result.notice = folder.notice;
  result.lora_file = directory / "lora.safetensors";
  if (folder.finished) {
    result.reused = true;
    for (const auto& [name, tensor] : io::SafetensorsFile::open(result.lora_file).tensors()) result.lora[name] = tensor.clone();
    result.summary = io::read_json_file(directory / "summary.json");
    return result;
  }

  const diffusion::NoiseSchedule& schedule = model.info().schedule;
  models::HostLora lora(model, config.lora, config.lora_seed(), config.gradient_checkpointing);
  models::HostDenoiser trained(model, &lora), reference(model, nullptr);
  ObjectiveContext context;
  context.model = &trained;
  context.reference = objective->needs_reference() ? &reference : nullptr;
  context.schedule = &schedule;
  context.data = &data;
  TrainOutcome outcome = train(config, *objective, context, lora.parameters(), directory, identity, progress);

  result.lora = lora.tensors();
  // ComfyUI's own key form ("diffusion_model.<path>.lora_down.weight", ...): LoraLoader maps it
  // onto the model the LoRA was trained on, whatever its architecture.
  save_result([&] { io::save_safetensors(result.lora_file, result.lora,
                                         lora_metadata(config, run_metadata(config, *objective, outcome, model.description, ""),
                                                       "comfy")); },
              result.lora_file, directory);
  // The host computes in its own dtype (ComfyUI's weight dtype and autocast), not Lethe's setting.
  result.summary = finish_run(config, outcome, directory, {{"lora_file", result.lora_file.string()}},
                              {{"precision", {{"requested", config.precision}, {"used", "host"},
                                              {"host_dtype", models::host_compute_dtype_name(host_dtype)},
                                              {"loss_scaling", host_precision == Precision::fp16}}}});
  return result;
}

}  // namespace lethe::unlearn
