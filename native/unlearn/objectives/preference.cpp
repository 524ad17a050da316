// Preference objectives against a frozen reference model (docs/methods.md §4): NPO on the
// forget set (optionally with a retain term, NPO+RT) and Diffusion-DPO with the forget
// sample as the loser and a retain sample as the winner. Forget errors use the frequency
// and spatial selections, divided by d so they are per-element means like the retain ones.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "io/json_config.hpp"
#include "unlearn/losses.hpp"
#include "unlearn/objectives/registry.hpp"

namespace lethe::unlearn {

namespace {

// Per-sample mean squared error of a prediction against a target [B, ...] -> [B].
at::Tensor mean_error(const at::Tensor& prediction, const at::Tensor& target) {
  return (prediction.to(at::kFloat) - target).pow(2).flatten(1).mean(1);
}

// Forget-term error per element: filtered energy / d. [B]
at::Tensor forget_mean_error(const ObjectiveContext& context, const at::Tensor& prediction, const at::Tensor& target,
                             const at::Tensor& masks) {
  return forget_error(prediction.to(at::kFloat) - target, masks, frequency_of(context)) /
         static_cast<double>(elements_per_sample(target));
}

at::Tensor reference_predict(ObjectiveContext& context, const at::Tensor& x_t, const at::Tensor& t, const at::Tensor& c) {
  check(context.reference != nullptr, "this objective needs a frozen reference model");
  at::NoGradGuard no_grad;
  return context.reference->predict(x_t, t, c);
}

struct NpoConfig {
  double beta = 0.1;
  double beta_k = 2500.0;      // beta * k, the ELBO-surrogate scale (project choice, docs/methods.md §4.2)
  double retain_weight = 0.0;  // > 0 adds retain_weight * mean_B e_theta(retain) (NPO+RT)
  template <typename V>
  void visit(V& v) {
    v("beta", beta);
    v("beta_k", beta_k);
    v("retain_weight", retain_weight);
  }
  void validate(const std::string& where) const {
    check(beta > 0 && beta_k > 0, where, ": beta and beta_k must be > 0");
    check(retain_weight >= 0, where, ".retain_weight: expected >= 0, got ", retain_weight);
  }
};

class Npo : public Objective {
 public:
  explicit Npo(NpoConfig config) : config_(config) {}
  std::string name() const override { return "npo"; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
  bool needs_reference() const override { return true; }
  bool needs_forget() const override { return true; }
  bool needs_retain() const override { return config_.retain_weight > 0; }
  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    ExampleBatch forget = context.next_forget();
    const at::Tensor& a = forget.images;
    at::Tensor t = forget_timesteps(context, a.size(0));
    at::Tensor eps = context.noise_like(a);
    at::Tensor a_t = context.schedule->add_noise(a, eps, t);
    at::Tensor target = context.schedule->training_target(a, eps, t);
    at::Tensor c = context.context(forget);
    at::Tensor weight = forget_time_weight(context, t).to(a.device());
    at::Tensor error = forget_mean_error(context, context.model->predict(a_t, t, c), target, forget.masks);
    at::Tensor reference = forget_mean_error(context, reference_predict(context, a_t, t, c), target, forget.masks);
    // Samples outside the time window contribute nothing (their weight is 0).
    at::Tensor loss = (weight * 2.0 / config_.beta * at::softplus(-config_.beta_k * (error - reference))).mean();
    LossTerms terms = {{"npo", loss.item<double>() * scale}, {"forget_error", error.mean().item<double>() * scale}};
    if (config_.retain_weight > 0) {
      ExampleBatch retain = context.next_retain();
      at::Tensor t_x = context.uniform_timesteps(retain.size());
      at::Tensor eps_x = context.noise_like(retain.images);
      at::Tensor p_x = context.model->predict(context.schedule->add_noise(retain.images, eps_x, t_x), t_x, context.context(retain));
      at::Tensor retain_loss = mean_error(p_x, context.schedule->training_target(retain.images, eps_x, t_x)).mean();
      loss = loss + config_.retain_weight * retain_loss;
      terms["retain"] = retain_loss.item<double>() * scale;
    }
    (loss * scale).backward();
    return terms;
  }

 private:
  NpoConfig config_;
};

struct DpoConfig {
  double beta = 5000.0;  // Diffusion-DPO's SD1.5 default with mean reduction
  template <typename V>
  void visit(V& v) {
    v("beta", beta);
  }
};

class Dpo : public Objective {
 public:
  explicit Dpo(DpoConfig config) : config_(config) {}
  std::string name() const override { return "dpo"; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
  bool needs_reference() const override { return true; }
  bool needs_forget() const override { return true; }
  bool needs_retain() const override { return true; }
  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    ExampleBatch winner = context.next_retain(), loser = context.next_forget();
    check(winner.images.sizes() == loser.images.sizes(), "DPO: retain (winner) and forget (loser) images must have "
                                                         "the same shape, got ", winner.images.sizes(), " and ",
          loser.images.sizes());
    // One t (from the forget window) and one eps shared by the pair.
    at::Tensor t = forget_timesteps(context, loser.size());
    at::Tensor eps = context.noise_like(loser.images);
    at::Tensor x_w = context.schedule->add_noise(winner.images, eps, t);
    at::Tensor x_l = context.schedule->add_noise(loser.images, eps, t);
    at::Tensor target_w = context.schedule->training_target(winner.images, eps, t);
    at::Tensor target_l = context.schedule->training_target(loser.images, eps, t);
    at::Tensor c_w = context.context(winner), c_l = context.context(loser);
    at::Tensor e_w = mean_error(context.model->predict(x_w, t, c_w), target_w);
    at::Tensor e_l = forget_mean_error(context, context.model->predict(x_l, t, c_l), target_l, loser.masks);
    at::Tensor r_w = mean_error(reference_predict(context, x_w, t, c_w), target_w);
    at::Tensor r_l = forget_mean_error(context, reference_predict(context, x_l, t, c_l), target_l, loser.masks);
    auto [loss, accuracy] = dpo_loss(e_w, e_l, r_w, r_l, config_.beta);
    (loss * scale).backward();
    return {{"dpo", loss.item<double>() * scale},
            {"implicit_accuracy", accuracy * scale},
            {"winner_error", e_w.mean().item<double>() * scale},
            {"loser_error", e_l.mean().item<double>() * scale}};
  }

 private:
  DpoConfig config_;
};

}  // namespace

void register_preference_objectives() {
  register_objective("npo", "Negative Preference Optimization on the forget set against a frozen reference "
                            "(optionally + a retain term, NPO+RT)",
                     [](const nlohmann::json& json, const std::string& where) {
                       return std::make_unique<Npo>(io::read_config<NpoConfig>(json, where));
                     });
  register_objective("dpo", "Diffusion-DPO: forget sample as the loser, retain sample as the winner, frozen reference",
                     [](const nlohmann::json& json, const std::string& where) {
                       return std::make_unique<Dpo>(io::read_config<DpoConfig>(json, where));
                     });
}

}  // namespace lethe::unlearn
