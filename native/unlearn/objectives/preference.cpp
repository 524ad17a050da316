// Preference objectives against a frozen reference model (docs/methods.md §4): NPO on the
// forget set (optionally with a retain term, NPO+RT) and Diffusion-DPO with the forget
// sample as the loser and a retain sample as the winner. Forget errors use the frequency
// and spatial selections, divided by d so they are per-element means like the retain ones.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "unlearn/losses.hpp"
#include "unlearn/objectives/configured_objective.hpp"
#include "unlearn/objectives/denoising_terms.hpp"
#include "unlearn/objectives/registry.hpp"

namespace lethe::unlearn {

namespace {

struct NpoConfig {
  double beta = 0.1;
  double beta_k = 2500.0;      // beta * k, the ELBO-surrogate scale (project choice, docs/methods.md §4.2)
  double retain_weight = 0.0;  // > 0 adds retain_weight * mean_B e_theta(retain) (NPO+RT)
  void validate(const std::string& where) const {
    check(beta > 0, where, ".beta: expected > 0, got ", beta);
    check(beta_k > 0, where, ".beta_k: expected > 0, got ", beta_k);
    check(retain_weight >= 0, where, ".retain_weight: expected >= 0, got ", retain_weight);
  }
  template <typename V>
  void visit(V& v) {
    v("beta", beta);
    v("beta_k", beta_k);
    v("retain_weight", retain_weight);
  }
};

class Npo : public ConfiguredObjective<NpoConfig, ObjectiveNeeds{.forget = true, .reference = true}> {
 public:
  using ConfiguredObjective::ConfiguredObjective;
  bool needs_retain() const override { return config_.retain_weight > 0; }
  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    ExampleBatch forget = context.next_forget();
    const NoisedBatch noisy = noise_batch(context, forget.images, forget_timesteps(context, forget.size()));
    models::Conditioning c = context.context(forget);
    at::Tensor weight = forget_time_weight(context, noisy.t).to(forget.images.device());  // [B]
    at::Tensor error =
        selected_mean_error(context, context.model->predict(noisy.x_t, noisy.t, c), noisy.target, forget.masks, noisy.t);
    at::Tensor reference =
        selected_mean_error(context, reference_predict(context, noisy.x_t, noisy.t, c), noisy.target, forget.masks, noisy.t);
    // Samples outside the time window contribute nothing (their weight is 0).
    at::Tensor loss = (weight * 2.0 / config_.beta * at::softplus(-config_.beta_k * (error - reference))).mean();
    LossTerms terms = {{"npo", loss.item<double>() * scale}, {"forget_error", error.mean().item<double>() * scale}};
    if (config_.retain_weight > 0) {
      at::Tensor retain_term = retain_loss(context, context.next_retain(), ErrorReduction::mean);
      loss = loss + config_.retain_weight * retain_term;
      terms["retain"] = retain_term.item<double>() * scale;
    }
    context.backward(loss * scale);
    return terms;
  }
};

struct DpoConfig {
  double beta = 5000.0;  // Diffusion-DPO's SD1.5 default with mean reduction
  template <typename V>
  void visit(V& v) {
    v("beta", beta);
  }
};

class Dpo : public ConfiguredObjective<DpoConfig, ObjectiveNeeds{.forget = true, .retain = true, .reference = true}> {
 public:
  using ConfiguredObjective::ConfiguredObjective;
  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    ExampleBatch winner = context.next_retain(), loser = context.next_forget();
    check(winner.images.sizes() == loser.images.sizes(), "DPO: retain (winner) and forget (loser) images must have "
                                                         "the same shape, got ", winner.images.sizes(), " and ",
          loser.images.sizes());
    // One t (from the forget window) and one eps shared by the pair.
    const NoisedBatch l = noise_batch(context, loser.images, forget_timesteps(context, loser.size()));
    const NoisedBatch w = noised(*context.schedule, winner.images, l.eps, l.t);
    models::Conditioning c_w = context.context(winner), c_l = context.context(loser);
    at::Tensor e_w = denoising_error(context.model->predict(w.x_t, w.t, c_w), w.target, ErrorReduction::mean);
    at::Tensor e_l = selected_mean_error(context, context.model->predict(l.x_t, l.t, c_l), l.target, loser.masks, l.t);
    at::Tensor r_w = denoising_error(reference_predict(context, w.x_t, w.t, c_w), w.target, ErrorReduction::mean);
    at::Tensor r_l = selected_mean_error(context, reference_predict(context, l.x_t, l.t, c_l), l.target, loser.masks, l.t);
    auto [loss, accuracy] = dpo_loss(e_w, e_l, r_w, r_l, config_.beta);
    context.backward(loss * scale);
    return {{"dpo", loss.item<double>() * scale},
            {"implicit_accuracy", accuracy * scale},
            {"winner_error", e_w.mean().item<double>() * scale},
            {"loser_error", e_l.mean().item<double>() * scale}};
  }
};

}  // namespace

void register_preference_objectives() {
  register_configured_objective<Npo, NpoConfig>("npo", "Negative Preference Optimization on the forget set against a "
                                                       "frozen reference (optionally + a retain term, NPO+RT)");
  register_configured_objective<Dpo, DpoConfig>(
      "dpo", "Diffusion-DPO: forget sample as the loser, retain sample as the winner, frozen reference");
}

}  // namespace lethe::unlearn
