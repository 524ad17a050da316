// The trainer every unlearning (and bench training) run goes through: AdamW with a
// constant or warmup+cosine learning rate, gradient clipping and accumulation, optional
// EMA weights, seeded determinism (same config and seed on the CPU give bitwise-identical
// weights), checkpoint/resume (stopping after k steps and resuming reproduces the
// uninterrupted run), a NaN/Inf guard, dynamic loss scaling in fp16 (a step whose gradients
// overflow changes no weights and halves the scale), and progress/cancel once per step.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "core/loss_scaling.hpp"
#include "core/progress.hpp"
#include "io/json_config.hpp"
#include "unlearn/adamw.hpp"
#include "unlearn/objective.hpp"

namespace lethe::unlearn {

// The defaults below are Lethe's unlearning defaults, tuned on the bench (docs/results.md):
// the CLI, the unlearn nodes' widgets and bench/configs read them from here.
struct OptimizerConfig {
  double learning_rate = 3e-5;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double weight_decay = 0.0;
  double eps = 1e-8;
  std::string lr_schedule = "constant";  // constant | cosine (after warmup, down to min_lr_ratio)
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;
  double grad_clip = 1.0;                // global L2 clip after the objective combines gradients; 0 = off

  template <typename V>
  void visit(V& v) {
    v("learning_rate", learning_rate);
    v("beta1", beta1);
    v("beta2", beta2);
    v("weight_decay", weight_decay);
    v("eps", eps);
    v("lr_schedule", lr_schedule);
    v("warmup_steps", warmup_steps);
    v("min_lr_ratio", min_lr_ratio);
    v("grad_clip", grad_clip);
  }
  void validate(const std::string& where) const;
  // Learning rate at optimizer step `step` (0-based) of `total`.
  double rate_at(int64_t step, int64_t total) const;
};

struct TrainerConfig {
  int64_t steps = 160;
  int64_t batch_size = 16;              // per micro-batch
  int64_t gradient_accumulation = 1;
  uint64_t seed = 0;
  OptimizerConfig optimizer;
  double ema_decay = 0.0;               // 0 = no EMA weights; else runs save the EMA weights
  int64_t checkpoint_every = 0;         // steps between checkpoints (0 = by time only)
  double checkpoint_seconds = 60.0;     // training seconds between checkpoints (0 = by steps only); a
                                        // checkpoint is also written on stop, cancel, error and at the end
  // Retain batches train the empty caption with this probability, as the base model was
  // trained (classifier-free guidance samples from both branches; see models/README.md).
  double retain_caption_dropout = 0.1;

  template <typename V>
  void visit(V& v) {
    v("steps", steps);
    v("batch_size", batch_size);
    v("gradient_accumulation", gradient_accumulation);
    v("seed", seed);
    v("optimizer", optimizer);
    v("ema_decay", ema_decay);
    v("checkpoint_every", checkpoint_every);
    v("checkpoint_seconds", checkpoint_seconds);
    v("retain_caption_dropout", retain_caption_dropout);
  }
  void validate(const std::string& where) const;
};

struct TrainOutcome {
  int64_t steps_done = 0;        // optimizer steps completed in total (including resumed ones)
  bool finished = false;         // reached config.steps
  bool resumed = false;          // started from a checkpoint
  double seconds = 0.0;          // wall time of this call
  double total_seconds = 0.0;    // wall time of all segments (resumed runs add up)
  std::vector<LossTerms> history;  // loss terms per completed step (from step 0)
  // A data-parallel run whose objective back-propagates through ObjectiveContext::backward: the
  // gradient buckets and how many of their sums (over this call's steps) started while the
  // backward still ran; empty otherwise.
  nlohmann::json gradient_buckets;
};

class Trainer {
 public:
  // `parameters` are the trainable tensors by name (checkpoint keys); they must require
  // grad. `context` supplies model, data and selections; its generator is seeded here. With
  // context.group set (a data-parallel run), model and reference predict through
  // dist::ShardedDenoiser while the trainer lives, gradients are summed over the ranks, and
  // only rank 0 writes checkpoints (every rank resumes from them).
  Trainer(TrainerConfig config, NamedTensors parameters, Objective& objective, ObjectiveContext& context);
  ~Trainer();

  // Trains up to config.steps. With `checkpoint` non-empty: resumes from it when it exists
  // (and `resume`), writes it every checkpoint_every steps or checkpoint_seconds of
  // training, on cancel (any exception from `progress`), on a NaN/Inf, when stopping early
  // and after the last step (so the trained state survives a failed save of the result).
  // stop_after >= 0 stops after that many steps in total (a resumable interruption).
  TrainOutcome run(const std::filesystem::path& checkpoint, const ProgressCallback& progress = {}, bool resume = true,
                   int64_t stop_after = -1);

  // The identity of the whole run (run_identity.hpp), stored in checkpoints and required to
  // match on resume.
  void set_run_identity(nlohmann::json identity) { run_identity_ = std::move(identity); }

  // Copies the EMA weights into the parameters (no-op without EMA).
  void apply_ema();
  const TrainerConfig& config() const { return config_; }

 private:
  void save_checkpoint(const std::filesystem::path& path, int64_t step, const std::vector<LossTerms>& history,
                       double seconds);
  int64_t load_checkpoint(const std::filesystem::path& path, std::vector<LossTerms>& history, double& seconds);
  nlohmann::json identity() const;
  void sum_gradients_over_ranks();

  struct Optimizer;
  TrainerConfig config_;
  NamedTensors parameters_;
  Objective& objective_;
  ObjectiveContext& context_;
  std::unique_ptr<Optimizer> optimizer_;
  std::vector<at::Tensor> ema_;
  LossScaler scaler_;  // enabled in fp16 (the precision of the thread that made the trainer)
  nlohmann::json run_identity_;
  // A data-parallel run's sharded model and reference, and the context's own pointers to put back.
  std::unique_ptr<models::Denoiser> sharded_model_, sharded_reference_;
  std::unique_ptr<dist::GradientBuckets> buckets_;  // the gradients' overlapped sums (data-parallel runs)
  models::Denoiser* own_model_ = nullptr;
  models::Denoiser* own_reference_ = nullptr;
};

}  // namespace lethe::unlearn
