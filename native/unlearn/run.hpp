// One unlearning run, end to end: load the model and data, build the objective and
// selections, train (full parameters or LoRA) with the trainer, and write the run folder:
// the unlearned model (.safetensors with metadata naming objective, selections, steps,
// seed and the source model's hash), the resolved config, a loss-curve PNG, the
// frequency-mask and timestep-weight pictures, and a summary. Inputs are never
// overwritten. The folder records the run's identity (identity.json, run_identity.hpp) and
// holds checkpoint.safetensors while it trains (every 60 s, and on cancel or failure); a run
// resumes only a folder holding exactly the same run.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "core/precision.hpp"
#include "core/progress.hpp"
#include "io/json_config.hpp"
#include "models/diffusion_model.hpp"
#include "models/host_model.hpp"
#include "models/lora.hpp"
#include "unlearn/frequency_selection.hpp"
#include "unlearn/objective.hpp"
#include "unlearn/timestep_selection.hpp"
#include "unlearn/trainer.hpp"

namespace lethe::dist {
class Group;
}

namespace lethe::unlearn {

struct DataConfig {
  std::string preset = "bench";          // a registered data preset (unlearn/presets.hpp): bench | folders
  std::string task = "data";             // data (remove forget images) | concept (erase a concept)
  // bench, data task: which artist pieces to forget (empty = all ten)
  std::vector<int64_t> forget_pieces;
  // bench, concept task: the class to erase and its anchor (a class name or a superclass)
  std::string concept_name = "sneaker";
  std::string anchor = "footwear";
  // folders preset: image folders (captions from name.txt, masks from name.mask.png)
  std::string forget_folder, retain_folder, anchor_folder;
  std::vector<std::string> target_captions;  // folders, concept task: the erased condition
  bool resize = false;
  bool captions_optional = false;        // folders: images without name.txt train the empty caption (else an error)
  int64_t retain_limit = 0;              // use at most this many retain images (0 = all)

  template <typename V>
  void visit(V& v) {
    v("preset", preset);
    v("task", task);
    v("forget_pieces", forget_pieces);
    v("concept", concept_name);
    v("anchor", anchor);
    v("forget_folder", forget_folder);
    v("retain_folder", retain_folder);
    v("anchor_folder", anchor_folder);
    v("target_captions", target_captions);
    v("resize", resize);
    v("captions_optional", captions_optional);
    v("retain_limit", retain_limit);
  }
  void validate(const std::string& where) const;
};

struct RunConfig {
  std::string model;                     // .safetensors (default: the bench base model)
  DataConfig data;
  std::string objective = "siss";
  nlohmann::json objective_config = nlohmann::json::object();
  TimestepSelectionConfig timesteps;
  FrequencySelectionConfig frequency;
  // How training draws t (auto: logit-normal for flow matching, uniform otherwise).
  diffusion::TimestepDistributionConfig timestep_distribution;
  TrainerConfig trainer;
  std::string trainable = "full";        // full | lora | cross_attention_kv (attn2.to_k/to_v weights only)
  models::LoraConfig lora;
  bool gradient_checkpointing = false;
  int64_t snapshot_every = 0;            // > 0: also save the model every k steps (snapshots/step-NNNNN.safetensors)
  std::string output;                    // run folder (default out/unlearn-<timestamp>)
  // The model's compute precision (core/precision.hpp): auto | fp32 | bf16 | fp16 (mixed, fp32 master weights).
  std::string precision = kDefaultPrecision;

  template <typename V>
  void visit(V& v) {
    v("model", model);
    v("data", data);
    v("objective", objective);
    v("objective_config", objective_config);
    v("timesteps", timesteps);
    v("frequency", frequency);
    v("timestep_distribution", timestep_distribution);
    v("trainer", trainer);
    v("trainable", trainable);
    v("lora", lora);
    v("gradient_checkpointing", gradient_checkpointing);
    v("snapshot_every", snapshot_every);
    v("output", output);
    v("precision", precision);
  }
  void validate(const std::string& where) const;
  // The LoRA adapters' initialisation seed, derived from the trainer's seed (so the two
  // never draw the same stream).
  uint64_t lora_seed() const { return trainer.seed + 17; }
};

// A run's config as `lethe unlearn` takes it: the JSON file (none: every default), then each
// --set "a.b=value" override, then `out` as the output folder when not empty. Errors name the file.
RunConfig run_config_from(const std::string& config_file, const std::vector<std::string>& overrides,
                          const std::string& out);

// Where a run's folder is.
struct RunPlacement {
  // Empty root (headless): the folder is RunConfig::output (out/unlearn-<time> when empty).
  // The same run there resumes; a different one is an error naming what differs, a finished
  // one an error (nothing is overwritten), one in use by another process an error.
  // Set (nodes): the first of root/stem, root/stem-2, ... that holds this same run (resumed,
  // or reused when finished) or is free; folders holding other runs are left as they are and
  // RunResult::notice says so in one line.
  std::filesystem::path root;
  std::string stem;
};

struct RunResult {
  std::filesystem::path directory;
  bool reused = false;                    // a finished identical run was found and returned
  std::string notice;                     // one line for the user (another run's folder was skipped), or empty
  std::filesystem::path model_file;       // the unlearned model (full weights)
  std::filesystem::path lora_file;        // the adapters, when trainable = lora
  nlohmann::json summary;
  std::shared_ptr<models::DiffusionModel> model;  // the unlearned model, in memory
};

// Builds the task's data for `model` with the config's data preset (pixels to model space,
// captions or contexts).
TaskData load_task_data(const DataConfig& config, const models::DiffusionModel& model);
// The "folders" preset: forget, retain and anchor image folders (retain_limit applied).
TaskData folder_task_data(const DataConfig& config, const models::DiffusionModel& model);
// Keeps the first `limit` retain examples (0 = all).
void limit_retain(TaskData& data, int64_t limit);

// Runs the whole job. `model` may be given in memory (the node graph does); otherwise it is
// loaded from config.model. The model passed in is not modified: the run trains a copy.
// With `group` of more than one rank (a data-parallel run, docs/distributed.md) every rank calls
// this with the same config: each computes its share of every batch, rank 0 alone writes the
// folder (every rank resumes from its checkpoint), and every rank returns the same result.
RunResult run_unlearning(const RunConfig& config, const ProgressCallback& progress = {},
                         std::shared_ptr<models::DiffusionModel> model = nullptr, const TaskData* data = nullptr,
                         const RunPlacement& placement = {}, const dist::Group* group = nullptr);

struct HostRunResult {
  std::filesystem::path directory;
  bool reused = false;
  std::string notice;
  std::filesystem::path lora_file;           // the adapters, in ComfyUI's key form
  std::map<std::string, at::Tensor> lora;    // the same tensors, in memory
  nlohmann::json summary;
};

// Unlearns a host model (any model ComfyUI loads) by training LoRA adapters through its
// callbacks (trainable is always lora; config.model and config.data are not used: `data`
// must carry host CONDITIONING). The host model is left without adapters afterwards.
HostRunResult run_host_unlearning(const RunConfig& config, models::HostModel& model, const TaskData& data,
                                  const ProgressCallback& progress = {}, const RunPlacement& placement = {});

// Draws the loss curves of a run history (one line per loss term).
void draw_loss_curves(const std::vector<LossTerms>& history, const std::filesystem::path& png, const std::string& title);

}  // namespace lethe::unlearn
