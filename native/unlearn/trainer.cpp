#include "unlearn/trainer.hpp"

#include <cmath>
#include <iterator>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "core/precision.hpp"
#include "dist/gradient_buckets.hpp"
#include "dist/group.hpp"
#include "dist/sharded_denoiser.hpp"
#include "io/safetensors.hpp"
#include "unlearn/adamw.hpp"
#include "unlearn/run_identity.hpp"

namespace lethe::unlearn {

namespace fs = std::filesystem;

// Checkpoint names of the objective's own tensors (Objective::tensor_state).
const std::string kObjectivePrefix = "objective/";

void OptimizerConfig::validate(const std::string& where) const {
  check(learning_rate > 0, where, ".learning_rate: expected > 0, got ", learning_rate);
  check(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, where, ": betas must be in [0, 1), got ", beta1, ", ", beta2);
  check(weight_decay >= 0, where, ".weight_decay: expected >= 0, got ", weight_decay);
  check(lr_schedule == "constant" || lr_schedule == "cosine", where, ".lr_schedule: unknown '", lr_schedule,
        "'; known: constant, cosine");
  check(warmup_steps >= 0, where, ".warmup_steps: expected >= 0, got ", warmup_steps);
  check(min_lr_ratio >= 0 && min_lr_ratio <= 1, where, ".min_lr_ratio: expected in [0, 1], got ", min_lr_ratio);
  check(grad_clip >= 0, where, ".grad_clip: expected >= 0 (0 = off), got ", grad_clip);
}

double OptimizerConfig::rate_at(int64_t step, int64_t total) const {
  if (step < warmup_steps) return learning_rate * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (lr_schedule == "constant") return learning_rate;
  const double span = std::max<int64_t>(1, total - warmup_steps);
  const double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / span);
  return learning_rate * (min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + std::cos(M_PI * progress)));
}

void TrainerConfig::validate(const std::string& where) const {
  check(steps >= 1, where, ".steps: expected >= 1, got ", steps);
  check(batch_size >= 1, where, ".batch_size: expected >= 1, got ", batch_size);
  check(gradient_accumulation >= 1, where, ".gradient_accumulation: expected >= 1, got ", gradient_accumulation);
  check(ema_decay >= 0 && ema_decay < 1, where, ".ema_decay: expected in [0, 1), got ", ema_decay);
  check(checkpoint_every >= 0, where, ".checkpoint_every: expected >= 0, got ", checkpoint_every);
  check(checkpoint_seconds >= 0, where, ".checkpoint_seconds: expected >= 0, got ", checkpoint_seconds);
  check(retain_caption_dropout >= 0 && retain_caption_dropout < 1, where, ".retain_caption_dropout: expected in [0, 1), got ",
        retain_caption_dropout);
  optimizer.validate(where + ".optimizer");
}

struct Trainer::Optimizer {
  std::unique_ptr<AdamW> adam;
};

Trainer::Trainer(TrainerConfig config, NamedTensors parameters, Objective& objective, ObjectiveContext& context)
    : config_(std::move(config)), parameters_(std::move(parameters)), objective_(objective), context_(context),
      optimizer_(std::make_unique<Optimizer>()),
      scaler_(current_precision() == Precision::fp16) {
  config_.validate("trainer");
  check(!parameters_.empty(), "trainer: nothing to train (no trainable parameters)");
  std::vector<at::Tensor> tensors;
  for (const auto& [name, tensor] : parameters_) {
    check(tensor.requires_grad(), "trainer: parameter '", name, "' does not require grad");
    tensors.push_back(tensor);
  }
  const auto& o = config_.optimizer;
  optimizer_->adam = std::make_unique<AdamW>(parameters_, AdamWOptions{.learning_rate = o.learning_rate,
                                                                        .beta1 = o.beta1,
                                                                        .beta2 = o.beta2,
                                                                        .eps = o.eps,
                                                                        .weight_decay = o.weight_decay});
  context_.parameters = tensors;
  context_.batch_size = config_.batch_size;
  context_.accumulation_steps = config_.gradient_accumulation;
  context_.retain_caption_dropout = config_.retain_caption_dropout;
  context_.generator = at::make_generator<at::CPUGeneratorImpl>(config_.seed);
  context_.reset_streams(config_.seed);
  if (dist::spans_ranks(context_.group)) {
    const dist::Group& group = *context_.group;
    check(config_.batch_size >= group.size(), "trainer.batch_size: a data-parallel run over ", group.size(),
          " ranks splits every batch, so it needs at least ", group.size(), " samples per batch, got ", config_.batch_size);
    own_model_ = context_.model;
    own_reference_ = context_.reference;
    buckets_ = std::make_unique<dist::GradientBuckets>(tensors, group);
    context_.buckets = buckets_.get();
    sharded_model_ = std::make_unique<dist::ShardedDenoiser>(*context_.model, group, "the trained model");
    context_.model = sharded_model_.get();
    if (context_.reference) {
      sharded_reference_ = std::make_unique<dist::ShardedDenoiser>(*context_.reference, group, "the frozen model");
      context_.reference = sharded_reference_.get();
    }
  }
  if (config_.ema_decay > 0) {
    at::NoGradGuard no_grad;
    for (const auto& [name, tensor] : parameters_) ema_.push_back(tensor.detach().clone());
  }
}

Trainer::~Trainer() {
  if (sharded_model_) {
    context_.model = own_model_;
    context_.reference = own_reference_;
    context_.buckets = nullptr;
  }
}

nlohmann::json Trainer::identity() const {
  nlohmann::json out = io::to_json(config_);
  out.erase("steps");  // a run may be resumed with more steps
  out.erase("checkpoint_every");
  out.erase("checkpoint_seconds");
  if (!run_identity_.is_null()) out["run"] = run_identity_;
  out["objective"] = objective_.name();
  out["objective_config"] = objective_.config_json();
  std::vector<std::string> names;
  for (const auto& [name, tensor] : parameters_) names.push_back(name);
  out["parameters"] = names;
  return out;
}

void Trainer::save_checkpoint(const fs::path& path, int64_t step, const std::vector<LossTerms>& history,
                              double seconds) {
  if (!dist::writes_files(context_.group)) return;  // every rank holds the same state: rank 0 writes it
  std::map<std::string, at::Tensor> tensors;
  const int64_t adam_steps = optimizer_->adam->save("adam/", tensors);
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, tensor] = parameters_[i];
    tensors["param/" + name] = tensor.detach();
    if (!ema_.empty()) tensors["ema/" + name] = ema_[i];
  }
  tensors["rng/generator"] = context_.generator.get_state();
  for (const auto& [name, tensor] : objective_.tensor_state()) tensors[kObjectivePrefix + name] = tensor.detach();
  nlohmann::json streams = nlohmann::json::object();
  for (const auto& [name, s] : context_.stream_states()) streams[name] = {s.epoch, s.position};
  nlohmann::json history_json = history;
  io::Metadata metadata = {{"lethe.checkpoint", "1"},
                           {"step", std::to_string(step)},
                           {"adam_step", std::to_string(adam_steps)},
                           {"identity", identity().dump()},
                           {"streams", streams.dump()},
                           {"history", history_json.dump()},
                           {"seconds", std::to_string(seconds)},
                           {"objective_state", objective_.state().dump()}};
  if (scaler_.enabled()) metadata["loss_scaler"] = scaler_.state().dump();
  io::save_safetensors(path, tensors, metadata);
}

int64_t Trainer::load_checkpoint(const fs::path& path, std::vector<LossTerms>& history, double& seconds) {
  const std::string where = str("checkpoint '", path.string(), "'");
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  const io::Metadata& metadata = file.metadata();
  check(metadata.count("lethe.checkpoint") && metadata.count("identity"), where, ": not a Lethe training checkpoint");
  for (const char* key : {"step", "adam_step", "streams", "history", "seconds"})
    check(metadata.count(key), where, ": metadata key '", key, "' is missing (truncated or foreign checkpoint)");
  const nlohmann::json saved = io::parse_json(metadata.at("identity"), where);
  check(saved == identity(), where, ": was written by a different run (it differs in ",
        join(identity_differences(saved, identity())), "); delete it or use another output folder");
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters_.size(); ++i) {
    const auto& [name, tensor] = parameters_[i];
    tensor.detach().copy_(file.tensor("param/" + name));
    if (!ema_.empty()) ema_[i].copy_(file.tensor("ema/" + name));
  }
  optimizer_->adam->load(
      "adam/",
      [&](const std::string& name) { return file.contains(name) ? file.tensor(name) : at::Tensor(); },
      std::stoll(metadata.at("adam_step")));
  context_.generator.set_state(file.tensor("rng/generator").clone());
  std::map<std::string, data::Batcher::State> streams;
  const nlohmann::json saved_streams = io::parse_json(metadata.at("streams"), where);
  for (const auto& [name, value] : saved_streams.items())
    streams[name] = {value[0].get<int64_t>(), value[1].get<int64_t>()};
  context_.restore_streams(streams);
  history = io::parse_json(metadata.at("history"), where).get<std::vector<LossTerms>>();
  seconds = std::stod(metadata.at("seconds"));
  if (scaler_.enabled()) {  // the identity says fp16, so its checkpoints carry the scale
    check(metadata.count("loss_scaler"), where, ": metadata key 'loss_scaler' is missing (an fp16 run's checkpoint "
          "keeps its loss scale)");
    scaler_.restore(io::parse_json(metadata.at("loss_scaler"), where), where + " loss_scaler");
  }
  // Checkpoints written before objectives kept state have no "objective_state": accept
  // them only for objectives that have none.
  if (metadata.count("objective_state")) {
    objective_.restore(io::parse_json(metadata.at("objective_state"), where));
    std::map<std::string, at::Tensor> objective_tensors;
    for (const auto& name : file.names())
      if (name.rfind(kObjectivePrefix, 0) == 0) objective_tensors[name.substr(kObjectivePrefix.size())] = file.tensor(name);
    objective_.restore_tensors(objective_tensors, where);
  } else {
    check(objective_.state().empty(), where, ": has no 'objective_state' but objective '", objective_.name(),
          "' keeps one (", objective_.state().dump(), ")");
  }
  return std::stoll(metadata.at("step"));
}

TrainOutcome Trainer::run(const fs::path& checkpoint, const ProgressCallback& progress, bool resume, int64_t stop_after) {
  TrainOutcome outcome;
  const auto started = std::chrono::steady_clock::now();
  int64_t step = 0;
  double previous_seconds = 0.0;
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(); };
  if (!checkpoint.empty() && resume && fs::exists(checkpoint)) {
    step = load_checkpoint(checkpoint, outcome.history, previous_seconds);
    outcome.resumed = true;
  }
  c10::InferenceMode enable_autograd(false);  // ComfyUI runs nodes under inference mode
  at::AutoGradMode grad_mode(true);
  const int64_t last = stop_after >= 0 ? std::min(stop_after, config_.steps) : config_.steps;
  ProgressReporter reporter(progress, "train", config_.steps, step);
  auto finish = [&](int64_t steps_done) {
    outcome.steps_done = steps_done;
    outcome.finished = steps_done >= config_.steps;
    outcome.seconds = elapsed();
    outcome.total_seconds = previous_seconds + outcome.seconds;
  };

  bool saved = false;  // the NaN guard saves before throwing
  const int64_t first_step = step;
  double last_checkpoint_seconds = 0.0;
  while (step < last) {
    // The random state at the start of the step: a step that fails halfway (an error, the NaN
    // guard) is checkpointed as not begun, so resuming repeats it exactly.
    const at::Tensor generator_at_start = context_.generator.get_state();
    const auto streams_at_start = context_.stream_states();
    const nlohmann::json objective_at_start = objective_.state();
    std::map<std::string, at::Tensor> objective_tensors_at_start;
    for (const auto& [name, tensor] : objective_.tensor_state()) objective_tensors_at_start[name] = tensor.detach().clone();
    bool step_done = false;
    auto rewind = [&] {
      if (step_done) return;
      context_.generator.set_state(generator_at_start);
      context_.restore_streams(streams_at_start);
      objective_.restore(objective_at_start);
      objective_.restore_tensors(objective_tensors_at_start, "the state at the start of the step");
    };
    try {
      context_.step = step;
      context_.gradients_summed = false;
      context_.loss_scale = scaler_.scale();
      context_.gradients_unscaled = false;
      optimizer_->adam->zero_grad();
      objective_.begin_step(context_);
      LossTerms terms;
      for (int64_t micro = 0; micro < config_.gradient_accumulation; ++micro) {
        context_.micro = micro;
        for (const auto& [name, value] : objective_.micro_step(context_)) terms[name] += value;
      }
      // In fp16 the terms finish_step adds from the gradients (their norms) may overflow like the
      // gradients: that skips the step below; the guard reads the losses the micro-steps returned.
      const LossTerms losses = scaler_.enabled() ? terms : LossTerms{};
      objective_.finish_step(context_, terms);
      if (context_.group && !context_.gradients_summed) sum_gradients_over_ranks();

      // NaN/Inf guard: nothing has been updated yet, so the current weights are the last good ones.
      for (const auto& [name, value] : scaler_.enabled() ? losses : terms)
        if (!std::isfinite(value)) {
          rewind();
          if (!checkpoint.empty()) save_checkpoint(checkpoint, step, outcome.history, previous_seconds + elapsed());
          saved = true;
          throw Error(str("training step ", step, ": loss term '", name, "' is ", value, "; stopped before updating",
                          checkpoint.empty() ? "" : str(", last good state saved to '", checkpoint.string(), "'"),
                          scaler_.enabled() ? " (fp16: the model's activations overflowed its range; use precision "
                                              "bf16 or fp32)" : ""));
        }
      if (scaler_.enabled() && !context_.gradients_unscaled) {
        std::vector<at::Tensor> gradients;
        for (const at::Tensor& parameter : context_.parameters) gradients.push_back(parameter.grad());
        scaler_.unscale(gradients);  // an overflow stays inf: the norm below sees it
      }
      const double grad_norm = global_grad_norm(context_.parameters);
      // fp16: gradients that overflowed at this loss scale skip the update; the scale halves.
      const bool overflowed = scaler_.enabled() && !std::isfinite(grad_norm);
      if (!std::isfinite(grad_norm) && !overflowed) {
        rewind();
        if (!checkpoint.empty()) save_checkpoint(checkpoint, step, outcome.history, previous_seconds + elapsed());
        saved = true;
        throw Error(str("training step ", step, ": gradient norm is ", grad_norm, " (objective '", objective_.name(),
                        "'); stopped before updating",
                        checkpoint.empty() ? "" : str(", last good state saved to '", checkpoint.string(), "'")));
      }
      if (overflowed) {
        // Weights, optimizer state and EMA stay as they were. The gradient statistics that
        // overflowed are left out of the history (JSON has no inf).
        for (auto it = terms.begin(); it != terms.end();) it = std::isfinite(it->second) ? std::next(it) : terms.erase(it);
        terms["overflow_skipped"] = 1.0;
        optimizer_->adam->zero_grad();
      } else {
        terms["grad_norm"] = grad_norm;
        if (config_.optimizer.grad_clip > 0)
          clip_gradients(context_.parameters, grad_norm, config_.optimizer.grad_clip);
        const double rate = config_.optimizer.rate_at(step, config_.steps);
        optimizer_->adam->set_learning_rate(rate);
        terms["lr"] = rate;
        optimizer_->adam->step();
        if (!ema_.empty()) {
          at::NoGradGuard no_grad;
          for (size_t i = 0; i < ema_.size(); ++i)
            ema_[i].mul_(config_.ema_decay).add_(parameters_[i].second.detach(), 1.0 - config_.ema_decay);
        }
      }
      if (scaler_.enabled()) {
        terms["loss_scale"] = scaler_.scale();
        scaler_.update(overflowed, str("training step ", step));
      }
      outcome.history.push_back(terms);
      ++step;
      step_done = true;
      const bool by_steps = config_.checkpoint_every > 0 && step % config_.checkpoint_every == 0;
      const bool by_time = config_.checkpoint_seconds > 0 && elapsed() - last_checkpoint_seconds >= config_.checkpoint_seconds;
      if (!checkpoint.empty() && (by_steps || by_time) && step < last) {
        save_checkpoint(checkpoint, step, outcome.history, previous_seconds + elapsed());
        last_checkpoint_seconds = elapsed();
      }
      reporter.update(step, terms);
    } catch (...) {
      // Cancelled, crashed or stopped by the guard: keep a resumable checkpoint of the
      // completed steps (the weights are those after the last completed step).
      if (!checkpoint.empty() && !saved) {
        rewind();
        save_checkpoint(checkpoint, step, outcome.history, previous_seconds + elapsed());
      }
      throw;
    }
  }
  // Stopped early, or finished: either way the state after the last step is kept until the
  // caller has saved the result (and removes the checkpoint).
  if (!checkpoint.empty() && step > first_step) save_checkpoint(checkpoint, step, outcome.history, previous_seconds + elapsed());
  finish(step);
  if (buckets_ && buckets_->started_during_backward() > 0)
    outcome.gradient_buckets = {{"count", buckets_->count()}, {"started_during_backward", buckets_->started_during_backward()}};
  return outcome;
}

void Trainer::sum_gradients_over_ranks() {
  std::vector<at::Tensor> gradients;
  for (const at::Tensor& parameter : context_.parameters) {
    at::Tensor p = parameter;
    if (!p.grad().defined()) p.mutable_grad() = at::zeros_like(p);  // the same buffer layout on every rank
    gradients.push_back(p.grad());
  }
  context_.group->all_reduce_sum(gradients, "the gradient sum");
}

void Trainer::apply_ema() {
  if (ema_.empty()) return;
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < ema_.size(); ++i) parameters_[i].second.detach().copy_(ema_[i]);
}

}  // namespace lethe::unlearn
