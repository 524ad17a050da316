// Concept unlearning with f-divergences and an anchor (docs/methods.md §5): x_t is built from
// anchor images; the trainable model's prediction under the erased concept c* is pulled
// towards the frozen model's prediction under the anchor c (a near class or a
// superclass), with the divergence choosing how large mismatches are weighted.
#include <algorithm>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/autograd.h>

#include "core/error.hpp"
#include "models/patch_critic.hpp"
#include "unlearn/adamw.hpp"
#include "unlearn/losses.hpp"
#include "unlearn/objectives/configured_objective.hpp"
#include "unlearn/objectives/denoising_terms.hpp"
#include "unlearn/objectives/registry.hpp"

namespace lethe::unlearn {

namespace {

struct FDivergenceConfig {
  std::string form = "closed";     // closed (§5.1) | variational (§5.2, a critic network)
  std::string divergence = "js";   // closed: mse | kl | reverse_kl | js | hellinger | chi2 | alpha;
                                   // variational: kl | reverse_kl | js | hellinger | chi2 | tv
  double tau = 2.0;                // closed: temperature of q = error / tau (2: the paper's losses, sigma = 1)
  bool tau_auto = false;           // closed: set tau at the first step so the batch median of q/4 is 1
  double alpha = 0.5;              // for divergence = alpha
  double preservation_weight = 0.0;  // Concept Ablation's prior preservation on anchor images
  // The variational form's critic, by the f-divergence paper's recipe (docs/methods.md §5.2).
  double critic_learning_rate = 1e-4;
  double critic_weight_decay = 0.01;  // torch.optim.AdamW's default, as the paper's code uses it
  int64_t critic_warmup_steps = 30;   // critic-only steps before the first model step
  int64_t critic_channels = 64;
  int64_t critic_layers = 3;
  bool critic_spectral_norm = true;
  double critic_grad_clip = 0.0;      // 0 = off (the paper's default)

  template <typename V>
  void visit(V& v) {
    v("form", form);
    v("divergence", divergence);
    v("tau", tau);
    v("tau_auto", tau_auto);
    v("alpha", alpha);
    v("preservation_weight", preservation_weight);
    v("critic_learning_rate", critic_learning_rate);
    v("critic_weight_decay", critic_weight_decay);
    v("critic_warmup_steps", critic_warmup_steps);
    v("critic_channels", critic_channels);
    v("critic_layers", critic_layers);
    v("critic_spectral_norm", critic_spectral_norm);
    v("critic_grad_clip", critic_grad_clip);
  }
  bool variational() const { return form == "variational"; }
  models::PatchCriticConfig critic() const { return {critic_channels, critic_layers, critic_spectral_norm}; }
  void validate(const std::string& where) const {
    check(form == "closed" || form == "variational", where, ".form: expected closed or variational, got '", form, "'");
    const auto& names = variational() ? variational_divergence_names() : f_divergence_names();
    check(std::find(names.begin(), names.end(), divergence) != names.end(), where, ".divergence: '", divergence,
          "' has no ", form, " form; ", form, " divergences: ", join(names));
    check(tau > 0, where, ".tau: expected > 0, got ", tau);
    check(preservation_weight >= 0, where, ".preservation_weight: expected >= 0");
    check(critic_learning_rate > 0, where, ".critic_learning_rate: expected > 0, got ", critic_learning_rate);
    check(critic_weight_decay >= 0, where, ".critic_weight_decay: expected >= 0, got ", critic_weight_decay);
    check(critic_warmup_steps >= 0, where, ".critic_warmup_steps: expected >= 0, got ", critic_warmup_steps);
    check(critic_grad_clip >= 0, where, ".critic_grad_clip: expected >= 0, got ", critic_grad_clip);
    critic().validate(where);
  }
};

// The variational form's critic with its AdamW, built at first use (on the predictions'
// device, from the run's generator) or from a checkpoint's tensors.
class Critic {
 public:
  explicit Critic(const FDivergenceConfig& config) : config_(config) {}

  // The critic for predictions like `prediction` [B, C, H, W].
  models::PatchCritic& get(ObjectiveContext& context, const at::Tensor& prediction, const std::string& where) {
    models::PatchCritic::output_size(prediction.size(2), prediction.size(3), config_.critic(), where);
    const int64_t channels = prediction.size(1) + 1;
    if (critic_ && critic_->parameters().front().device() != prediction.device()) {
      pending_ = tensors();  // move: rebuild from its own tensors on the new device
      critic_.reset();
    }
    if (!critic_ && !pending_.empty()) {
      const std::string prefix = "critic/";
      std::map<std::string, at::Tensor> weights;
      for (const auto& [name, tensor] : pending_)
        if (name.rfind(prefix, 0) == 0) weights[name.substr(prefix.size())] = tensor;
      critic_ = std::make_unique<models::PatchCritic>(channels, config_.critic(), weights, where + ": saved critic");
      critic_->to(prediction.device());
      make_optimizer();
      adam_->load(
          "critic_adam/",
          [&](const std::string& name) { return pending_.count(name) ? pending_.at(name) : at::Tensor(); }, steps);
      pending_.clear();
    }
    if (!critic_) {
      critic_ = std::make_unique<models::PatchCritic>(channels, config_.critic(), context.generator);
      critic_->to(prediction.device());
      make_optimizer();
    }
    check(critic_->input_channels() == channels, where, ": the critic was made for ", critic_->input_channels() - 1,
          "-channel predictions, got ", prediction.sizes());
    return *critic_;
  }

  // One micro-batch of the critic's loss on detached predictions; its gradient is summed
  // apart (so the model's backward through the frozen critic never reaches it), and the
  // AdamW step is taken after the last micro-batch of an optimizer step. Returns the loss.
  double learn(ObjectiveContext& context, const at::Tensor& real, const at::Tensor& fake, const at::Tensor& masks,
               const std::string& where) {
    models::PatchCritic& critic = get(context, fake, where);
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    at::Tensor loss = critic_loss(critic.forward(real.detach(), masks, /*update=*/true),
                                  critic.forward(fake.detach(), masks, /*update=*/true), masks, config_.divergence);
    std::vector<at::Tensor> gradients = torch::autograd::grad({loss * scale}, critic.parameters());
    if (sums_.empty()) {
      sums_ = gradients;
    } else {
      for (size_t i = 0; i < sums_.size(); ++i) sums_[i].add_(gradients[i]);
    }
    if (++micro_ == context.accumulation_steps) {
      const std::vector<at::Tensor> parameters = critic.parameters();
      add_gradients(parameters, sums_, 1.0);  // their .grad is empty: the critic's own step only
      if (config_.critic_grad_clip > 0) clip_gradients(parameters, global_grad_norm(parameters), config_.critic_grad_clip);
      adam_->step();
      adam_->zero_grad();
      sums_.clear();
      micro_ = 0;
      ++steps;
    }
    return loss.item<double>();
  }

  // Weights, u/v vectors and AdamW moments ("critic/...", "critic_adam/...").
  std::map<std::string, at::Tensor> tensors() const {
    if (!critic_) return pending_;
    std::map<std::string, at::Tensor> out;
    for (const auto& [name, tensor] : critic_->state()) out["critic/" + name] = tensor;
    adam_->save("critic_adam/", out);
    return out;
  }
  // Back to `tensors` (empty: no critic yet); built on the next get().
  void restore(const std::map<std::string, at::Tensor>& tensors) {
    critic_.reset();
    adam_.reset();
    sums_.clear();
    micro_ = 0;
    pending_.clear();
    for (const auto& [name, tensor] : tensors) pending_[name] = tensor.clone();
  }

  int64_t steps = 0;  // critic optimizer steps taken

 private:
  NamedTensors named() const { return critic_->named_parameters(); }
  void make_optimizer() {
    adam_ = std::make_unique<AdamW>(
        named(), AdamWOptions{.learning_rate = config_.critic_learning_rate, .weight_decay = config_.critic_weight_decay});
  }

  const FDivergenceConfig& config_;
  std::unique_ptr<models::PatchCritic> critic_;
  std::unique_ptr<AdamW> adam_;
  std::vector<at::Tensor> sums_;
  int64_t micro_ = 0;
  std::map<std::string, at::Tensor> pending_;
};

class FDivergence
    : public ConfiguredObjective<FDivergenceConfig, ObjectiveNeeds{.anchor = true, .reference = true}> {
 public:
  FDivergence(std::string name, FDivergenceConfig config)
      : ConfiguredObjective(std::move(name), std::move(config)), tau_(config_.tau), critic_(config_) {}
  nlohmann::json state() const override {
    nlohmann::json out = {{"tau", tau_}, {"tau_fixed", tau_fixed_}};
    if (config_.variational()) {
      out["critic_steps"] = critic_.steps;
      out["warmed_up"] = warmed_up_;
    }
    return out;
  }
  void restore(const nlohmann::json& state) override {
    tau_ = state.at("tau").get<double>();
    tau_fixed_ = state.at("tau_fixed").get<bool>();
    if (config_.variational()) {
      critic_.steps = state.at("critic_steps").get<int64_t>();
      warmed_up_ = state.at("warmed_up").get<bool>();
    }
  }
  std::map<std::string, at::Tensor> tensor_state() const override { return critic_.tensors(); }
  void restore_tensors(const std::map<std::string, at::Tensor>& tensors, const std::string&) override {
    if (config_.variational()) critic_.restore(tensors);
  }

  // The variational form trains its critic alone for critic_warmup_steps optimizer steps
  // before the model's first step (the model's predictions taken without gradient).
  void begin_step(ObjectiveContext& context) override {
    if (!config_.variational() || warmed_up_) return;
    for (int64_t step = 0; step < config_.critic_warmup_steps; ++step)
      for (int64_t micro = 0; micro < context.accumulation_steps; ++micro) {
        Predictions p;
        {
          at::NoGradGuard no_grad;
          p = predict(context);
        }
        critic_.learn(context, p.anchored, p.prediction, p.masks, where());
      }
    warmed_up_ = true;
  }

  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    const Predictions p = predict(context);
    at::Tensor weight = forget_time_weight(context, p.t).to(p.prediction.device());  // [B] m(t)
    LossTerms terms;
    at::Tensor loss;
    if (config_.variational()) {
      terms["critic"] = critic_.learn(context, p.anchored, p.prediction, p.masks, where()) * scale;
      at::Tensor fake = critic_.get(context, p.prediction, where()).forward(p.prediction, p.masks, /*update=*/false);
      loss = (weight * generator_loss(fake, config_.divergence)).mean();
      terms["generator"] = loss.item<double>() * scale;
    } else {
      at::Tensor error = selected_mean_error(context, p.prediction, p.anchored, p.masks, p.t);  // [B] mean squared gap
      if (config_.tau_auto && !tau_fixed_) {
        tau_ = std::max(1e-12, error.detach().median().item<double>() / 4.0);
        tau_fixed_ = true;
      }
      loss = (weight * f_divergence(error, config_.divergence, tau_, config_.alpha)).mean();
      terms = {{"divergence", loss.item<double>() * scale}, {"gap", error.mean().item<double>() * scale},
               {"tau", tau_ * scale}};
    }
    if (config_.preservation_weight > 0) {
      at::Tensor preserved = context.model->predict(p.x_t, p.t, p.c_anchor).to(at::kFloat);
      at::Tensor preservation = (preserved - p.target).pow(2).mean();
      loss = loss + config_.preservation_weight * preservation;
      terms["preservation"] = preservation.item<double>() * scale;
    }
    context.backward(loss * scale);
    return terms;
  }

 private:
  // One anchor batch noised in the forget window: the frozen model's prediction under the
  // anchor c and the trained model's under the erased concept c*.
  struct Predictions {
    at::Tensor t, x_t, target, masks;
    models::Conditioning c_anchor;
    at::Tensor anchored;    // sg(eps_Phi(x_t, t, c)), float [B, C, H, W]
    at::Tensor prediction;  // eps_theta(x_t, t, c*), float [B, C, H, W]
  };
  Predictions predict(ObjectiveContext& context) {
    ExampleBatch anchor = context.next_anchor();
    const NoisedBatch noisy = noise_batch(context, anchor.images, forget_timesteps(context, anchor.size()));
    Predictions p{noisy.t, noisy.x_t, noisy.target, anchor.masks, context.context(anchor)};
    models::Conditioning c_target = context.target_context(anchor.size());
    p.anchored = reference_predict(context, noisy.x_t, noisy.t, p.c_anchor).to(at::kFloat);
    p.prediction = context.model->predict(noisy.x_t, noisy.t, c_target).to(at::kFloat);
    const FrequencySelection& frequency = frequency_of(context);
    if (config_.variational() && frequency.enabled()) {  // the critic compares the selected band
      p.anchored = frequency.apply(p.anchored, time_fraction(context, p.t));
      p.prediction = frequency.apply(p.prediction, time_fraction(context, p.t));
    }
    return p;
  }
  std::string where() const { return str("objective '", name_, "' (variational ", config_.divergence, ")"); }

  double tau_;
  bool tau_fixed_ = false;
  Critic critic_;
  bool warmed_up_ = false;
};

}  // namespace

void register_concept_objectives() {
  register_configured_objective<FDivergence, FDivergenceConfig>(
      "f_divergence", "concept erasure: an f-divergence between the trained model under the target and the frozen "
                      "model under the anchor, in closed form (mse, kl, reverse_kl, js, hellinger, chi2, alpha) or "
                      "variational, with a critic network (kl, reverse_kl, js, hellinger, chi2, tv)");
}

}  // namespace lethe::unlearn
