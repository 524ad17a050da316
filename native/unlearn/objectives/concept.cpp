// Concept unlearning with f-divergences and an anchor (docs/methods.md §5): x_t is built from
// anchor images; the trainable model's prediction under the erased concept c* is pulled
// towards the frozen model's prediction under the anchor c (a near class or a
// superclass), with the divergence choosing how large mismatches are weighted.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "unlearn/losses.hpp"
#include "unlearn/objectives/configured_objective.hpp"
#include "unlearn/objectives/denoising_terms.hpp"
#include "unlearn/objectives/registry.hpp"

namespace lethe::unlearn {

namespace {

struct FDivergenceConfig {
  std::string divergence = "js";   // mse | kl | reverse_kl | js | hellinger | chi2 | alpha
  double tau = 1.0;                // temperature of q = error / tau
  bool tau_auto = false;           // set tau at the first step so the batch median of q/4 is 1
  double alpha = 0.5;              // for divergence = alpha
  double preservation_weight = 0.0;  // Concept Ablation's prior preservation on anchor images

  template <typename V>
  void visit(V& v) {
    v("divergence", divergence);
    v("tau", tau);
    v("tau_auto", tau_auto);
    v("alpha", alpha);
    v("preservation_weight", preservation_weight);
  }
  void validate(const std::string& where) const {
    bool known = false;
    for (const auto& name : f_divergence_names()) known = known || name == divergence;
    check(known, where, ".divergence: unknown '", divergence, "'; known: ", join(f_divergence_names()));
    check(tau > 0, where, ".tau: expected > 0, got ", tau);
    check(preservation_weight >= 0, where, ".preservation_weight: expected >= 0");
  }
};

class FDivergence
    : public ConfiguredObjective<FDivergenceConfig, ObjectiveNeeds{.anchor = true, .reference = true}> {
 public:
  FDivergence(std::string name, FDivergenceConfig config)
      : ConfiguredObjective(std::move(name), std::move(config)), tau_(config_.tau) {}
  nlohmann::json state() const override { return {{"tau", tau_}, {"tau_fixed", tau_fixed_}}; }
  void restore(const nlohmann::json& state) override {
    tau_ = state.at("tau").get<double>();
    tau_fixed_ = state.at("tau_fixed").get<bool>();
  }

  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    ExampleBatch anchor = context.next_anchor();
    const NoisedBatch noisy = noise_batch(context, anchor.images, forget_timesteps(context, anchor.size()));
    models::Conditioning c_anchor = context.context(anchor);
    models::Conditioning c_target = context.target_context(anchor.size());
    at::Tensor anchored = reference_predict(context, noisy.x_t, noisy.t, c_anchor).to(at::kFloat);  // sg(eps_Phi(x_t, t, c))
    at::Tensor prediction = context.model->predict(noisy.x_t, noisy.t, c_target).to(at::kFloat);
    at::Tensor error = selected_mean_error(context, prediction, anchored, anchor.masks);  // [B] mean squared gap
    if (config_.tau_auto && !tau_fixed_) {
      tau_ = std::max(1e-12, error.detach().median().item<double>() / 4.0);
      tau_fixed_ = true;
    }
    at::Tensor weight = forget_time_weight(context, noisy.t).to(anchor.images.device());  // [B]
    at::Tensor loss = (weight * f_divergence(error, config_.divergence, tau_, config_.alpha)).mean();
    LossTerms terms = {{"divergence", loss.item<double>() * scale}, {"gap", error.mean().item<double>() * scale}};
    if (config_.preservation_weight > 0) {
      at::Tensor preserved = context.model->predict(noisy.x_t, noisy.t, c_anchor).to(at::kFloat);
      at::Tensor preservation = (preserved - noisy.target).pow(2).mean();
      loss = loss + config_.preservation_weight * preservation;
      terms["preservation"] = preservation.item<double>() * scale;
    }
    (loss * scale).backward();
    terms["tau"] = tau_ * scale;
    return terms;
  }

 private:
  double tau_;
  bool tau_fixed_ = false;
};

}  // namespace

void register_concept_objectives() {
  register_configured_objective<FDivergence, FDivergenceConfig>(
      "f_divergence", "concept erasure: an f-divergence (mse, kl, reverse_kl, js, hellinger, chi2, alpha) between the "
                      "trained model under the target and the frozen model under the anchor");
}

}  // namespace lethe::unlearn
