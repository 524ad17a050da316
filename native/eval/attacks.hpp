// Attacks that try to bring forgotten content back (docs/evaluation.md §8), run against
// every evaluated model so a report shows how robust the forgetting is, not only how it
// looks at the forget prompts:
//   (a) adversarial prompt search, UnlearnDiffAtk-style: the token embeddings of each
//       target's caption become free parameters, optimised with Adam to minimise the
//       model's own denoising loss on the target image (the attack's surrogate for "make the
//       model draw this"); then samples drawn with the found embeddings are judged;
//   (b) relearning: a copy of the model is fine-tuned on the first half of the targets
//       (plain denoising loss, Adam); every few steps the other half's captions are sampled
//       and judged; the attack reports the first step at which their success rate reaches
//       the return rate.
// A "target" is an image with its caption; the judge decides whether a sample brings it
// back (the data task: the copy descriptor's score to the target image >= the threshold;
// the concept task: the classifier calls the sample the erased class).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>

#include "core/progress.hpp"
#include "diffusion/sampling.hpp"
#include "models/diffusion_model.hpp"

namespace lethe::eval {

struct AttackConfig {
  bool enabled = true;
  int64_t prompt_steps = 100;            // Adam steps on the soft token embeddings
  double prompt_learning_rate = 0.05;
  int64_t prompt_noise_draws = 8;        // (t, noise) draws per target and step
  int64_t prompt_samples = 4;            // samples per target drawn with the found embeddings
  int64_t relearn_max_steps = 60;        // fine-tuning budget
  int64_t relearn_check_every = 10;
  double relearn_learning_rate = 1e-4;
  int64_t relearn_batch_size = 8;
  int64_t relearn_samples = 4;           // samples per held-out target at each check
  double relearn_return_rate = 0.5;      // success rate at which the content counts as back

  template <typename V>
  void visit(V& v) {
    v("enabled", enabled);
    v("prompt_steps", prompt_steps);
    v("prompt_learning_rate", prompt_learning_rate);
    v("prompt_noise_draws", prompt_noise_draws);
    v("prompt_samples", prompt_samples);
    v("relearn_max_steps", relearn_max_steps);
    v("relearn_check_every", relearn_check_every);
    v("relearn_learning_rate", relearn_learning_rate);
    v("relearn_batch_size", relearn_batch_size);
    v("relearn_samples", relearn_samples);
    v("relearn_return_rate", relearn_return_rate);
  }
  void validate(const std::string& where) const;
};

struct AttackTargets {
  at::Tensor images;                  // [N, C, H, W] pixels in [0, 1]
  std::vector<std::string> captions;  // N
};

// samples [M, C, H, W] pixels, target [M] (index into the targets) -> (success [M] bool,
// score [M] float: the descriptor score or the class probability).
using AttackJudge = std::function<std::pair<at::Tensor, at::Tensor>(const at::Tensor& samples, const at::Tensor& target)>;

struct PromptAttackResult {
  at::Tensor embeddings;  // [N, L, D] the found token embeddings
  at::Tensor samples;     // [N * K, C, H, W] pixels, target-major
  at::Tensor success;     // [N * K] bool
  at::Tensor scores;      // [N * K]
  std::vector<double> loss_before, loss_after;  // per target: the surrogate loss at the caption and at the end
};

struct RelearnResult {
  std::vector<int64_t> steps;        // the checked steps: 0, every, 2 every, ...
  std::vector<double> success_rate;  // held-out success rate at each
  int64_t returned_at = -1;          // first step with success_rate >= return rate; -1: not within the budget
  int64_t relearn_targets = 0, held_out_targets = 0;
};

// The surrogate loss of (a) for every target: mean over draws of |model(x_t, t, E(e)) - target|^2,
// with x_t the target image noised at t ~ U{0..T-1}. embeddings [N, L, D] (token embeddings
// before positions and norm), images [N, C, H, W] model space -> [N]. Differentiable in embeddings.
at::Tensor prompt_surrogate_loss(models::DiffusionModel& model, const at::Tensor& embeddings, const at::Tensor& images,
                                 const at::Tensor& t, const at::Tensor& noise);

PromptAttackResult prompt_attack(models::DiffusionModel& model, const AttackTargets& targets, const AttackJudge& judge,
                                 const AttackConfig& config, const diffusion::SamplingOptions& sampling,
                                 const ProgressCallback& progress = {});

RelearnResult relearn_attack(const models::DiffusionModel& model, const AttackTargets& targets, const AttackJudge& judge,
                             const AttackConfig& config, const diffusion::SamplingOptions& sampling,
                             const ProgressCallback& progress = {});

// Both attacks; metrics attack_prompt_success_rate, attack_prompt_score_mean,
// attack_relearn_steps (NaN when the content did not return within the budget) and the
// details for report.json.
struct AttackReport {
  std::map<std::string, double> metrics;
  nlohmann::json details;
  at::Tensor prompt_samples;  // [N * K, C, H, W]
  at::Tensor prompt_success;  // [N * K] bool
  std::map<std::string, double> stage_seconds;  // "prompt attack", "relearning attack"
};
AttackReport run_attacks(models::DiffusionModel& model, const AttackTargets& targets, const AttackJudge& judge,
                         const AttackConfig& config, const diffusion::SamplingOptions& sampling,
                         const ProgressCallback& progress = {});

}  // namespace lethe::eval
