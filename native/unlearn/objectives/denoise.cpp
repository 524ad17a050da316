// Plain denoising training on one set: the diffusion loss || target - model(x_t, t, c) ||^2.
// "denoise" (mean reduction, caption dropout for classifier-free guidance) trains models;
// "naive_deletion" is the SISS baseline: fine-tune on the retain set only, with the SISS
// repository's reduction (sum over pixels, mean over the batch). docs/methods.md §2.3.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "io/json_config.hpp"
#include "unlearn/caption_variants.hpp"
#include "unlearn/objectives/registry.hpp"

namespace lethe::unlearn {

namespace {

struct DenoiseConfig {
  std::string set = "retain";     // retain | forget
  std::string reduction = "mean"; // mean (over all elements) | sum (sum_d, mean over batch)
  double caption_dropout = 0.0;   // probability of training a sample with the empty caption

  template <typename V>
  void visit(V& v) {
    v("set", set);
    v("reduction", reduction);
    v("caption_dropout", caption_dropout);
  }
  void validate(const std::string& where) const {
    check(set == "retain" || set == "forget", where, ".set: expected retain or forget, got '", set, "'");
    check(reduction == "mean" || reduction == "sum", where, ".reduction: expected mean or sum, got '", reduction, "'");
    check(caption_dropout >= 0 && caption_dropout < 1, where, ".caption_dropout: expected in [0, 1), got ",
          caption_dropout);
  }
};

class Denoise : public Objective {
 public:
  Denoise(std::string name, DenoiseConfig config) : name_(std::move(name)), config_(std::move(config)) {}
  std::string name() const override { return name_; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
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
    at::Tensor t = context.uniform_timesteps(count);
    at::Tensor noise = context.noise_like(batch.images);
    at::Tensor x_t = context.schedule->add_noise(batch.images, noise, t);
    at::Tensor target = context.schedule->training_target(batch.images, noise, t);
    at::Tensor prediction = context.model->predict(x_t, t.to(x_t.device()), context.context(batch));  // [B, C, H, W]
    at::Tensor squared = (prediction.to(at::kFloat) - target.to(at::kFloat)).pow(2);
    at::Tensor loss = config_.reduction == "mean" ? squared.mean() : squared.sum() / static_cast<double>(count);
    (loss / static_cast<double>(context.accumulation_steps)).backward();
    return {{"loss", loss.item<double>() / context.accumulation_steps}};
  }

 private:
  std::string name_;
  DenoiseConfig config_;
};

}  // namespace

void register_denoise_objectives() {
  register_objective("denoise", "diffusion training on one set (mean reduction, optional caption dropout)",
                     [](const nlohmann::json& json, const std::string& where) {
                       return std::make_unique<Denoise>("denoise", io::read_config<DenoiseConfig>(json, where));
                     });
  register_objective("naive_deletion", "fine-tune on the retain set only (SISS baseline, sum_d reduction)",
                     [](const nlohmann::json& json, const std::string& where) {
                       DenoiseConfig defaults;
                       defaults.reduction = "sum";
                       return std::make_unique<Denoise>("naive_deletion", io::merge_config(defaults, json, where));
                     });
}

}  // namespace lethe::unlearn
