// Plain denoising training on one set: the diffusion loss || target - model(x_t, t, c) ||^2.
// "denoise" (mean reduction, caption dropout for classifier-free guidance) trains models;
// "naive_deletion" is the SISS baseline: fine-tune on the retain set only, with the SISS
// repository's reduction (sum over pixels, mean over the batch). docs/methods.md §2.3.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "unlearn/caption_variants.hpp"
#include "unlearn/objectives/configured_objective.hpp"
#include "unlearn/objectives/denoising_terms.hpp"
#include "unlearn/objectives/registry.hpp"

namespace lethe::unlearn {

namespace {

struct DenoiseConfig {
  std::string set = "retain";     // retain | forget
  std::string reduction = "mean"; // mean (over all elements) | sum (sum_d, mean over batch)
  double caption_dropout = 0.0;   // probability of training a sample with the empty caption

  void validate(const std::string& where) const {
    check(set == "retain" || set == "forget", where, ".set: expected retain or forget, got '", set, "'");
    check(reduction == "mean" || reduction == "sum", where, ".reduction: expected mean or sum, got '", reduction, "'");
    check(caption_dropout >= 0 && caption_dropout < 1, where, ".caption_dropout: expected in [0, 1), got ",
          caption_dropout);
  }
  template <typename V>
  void visit(V& v) {
    v("set", set);
    v("reduction", reduction);
    v("caption_dropout", caption_dropout);
  }
};

// Needs the set it trains on, by config.
class Denoise : public ConfiguredObjective<DenoiseConfig, ObjectiveNeeds{}> {
 public:
  using ConfiguredObjective::ConfiguredObjective;
  bool needs_retain() const override { return config_.set == "retain"; }
  bool needs_forget() const override { return config_.set == "forget"; }

  LossTerms micro_step(ObjectiveContext& context) override {
    ExampleBatch batch = config_.set == "retain" ? context.next_retain() : context.next_forget();
    for (std::string& caption : batch.captions) {
      caption = choose_caption_variant(caption, context.generator);
      if (config_.caption_dropout > 0 &&
          at::rand({1}, context.generator, at::kDouble).item<double>() < config_.caption_dropout)
        caption.clear();
    }
    const int64_t count = batch.size();
    const NoisedBatch noisy = noise_batch(context, batch.images, context.training_timesteps(count));
    at::Tensor prediction =
        context.model->predict(noisy.x_t, noisy.t.to(noisy.x_t.device()), context.context(batch));  // [B, C, H, W]
    at::Tensor squared = (prediction.to(at::kFloat) - noisy.target.to(at::kFloat)).pow(2);
    at::Tensor loss = config_.reduction == "mean" ? squared.mean() : squared.sum() / static_cast<double>(count);
    context.backward(loss / static_cast<double>(context.accumulation_steps));
    return {{"loss", loss.item<double>() / context.accumulation_steps}};
  }

};

}  // namespace

void register_denoise_objectives() {
  register_configured_objective<Denoise, DenoiseConfig>(
      "denoise", "diffusion training on one set (mean reduction, optional caption dropout)");
  DenoiseConfig sum_reduction;
  sum_reduction.reduction = "sum";
  register_configured_objective<Denoise>("naive_deletion",
                                         "fine-tune on the retain set only (SISS baseline, sum_d reduction)",
                                         sum_reduction);
}

}  // namespace lethe::unlearn
