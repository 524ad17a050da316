// Data-unlearning objectives of the SISS paper and its repository (docs/methods.md §2):
// SISS with importance sampling, SISS without IS (two forwards), NegGrad and EraseDiff.
// The forget term honours the time window, the frequency mask and spatial masks (§3).
#include <ATen/ATen.h>

#include <map>

#include "core/error.hpp"
#include "dist/group.hpp"
#include "unlearn/caption_variants.hpp"
#include "unlearn/losses.hpp"
#include "unlearn/objectives/configured_objective.hpp"
#include "unlearn/objectives/denoising_terms.hpp"
#include "unlearn/objectives/registry.hpp"

namespace lethe::unlearn {

namespace {

struct SissConfig {
  double lambda = 0.5;         // mixture weight: probability a mixture sample comes from the forget set
  // N_s: |g_a| is rescaled to this (sum_d reduction). The SISS repository uses 5 on MNIST; its
  // README says ~10% of |g_x|, which is 60-600 on the bench (bench/unlearning.json).
  double scaling_norm = 30.0;
  // Caption ablation (docs/methods.md §2.4, off at 0): the forget caption's prediction at x_t is
  // pulled towards the frozen model's prediction for the same caption without the words in
  // `ablation_words` (a trailing * matches a prefix), added to the retain side with this weight.
  double ablation_weight = 0.0;
  std::vector<std::string> ablation_words;
  // x_t of the retain batch's images (measured better on the bench, docs/results.md), of retain
  // images whose caption (one of its variants) is the ablated caption ("retain_same_caption":
  // the frozen model's target then belongs to an image of what the caption names), or of the
  // forget images.
  std::string ablation_inputs = "retain";
  // Preservation (docs/methods.md §2.4, off at 0): at the same x_t, the caption without the
  // ablated words is also pulled towards the frozen model's prediction for it (the target the
  // forget caption is pulled to), so what that caption draws stays where it was.
  double preservation_weight = 0.0;

  template <typename V>
  void visit(V& v) {
    v("lambda", lambda);
    v("scaling_norm", scaling_norm);
    v("ablation_weight", ablation_weight);
    v("ablation_words", ablation_words);
    v("ablation_inputs", ablation_inputs);
    v("preservation_weight", preservation_weight);
  }
  void validate(const std::string& where) const {
    check(lambda > 0 && lambda < 1, where, ".lambda: expected in (0, 1), got ", lambda);
    check(scaling_norm >= 0, where, ".scaling_norm: expected >= 0, got ", scaling_norm);
    check(ablation_weight >= 0, where, ".ablation_weight: expected >= 0, got ", ablation_weight);
    check(ablation_weight == 0 || !ablation_words.empty(), where,
          ".ablation_words: expected the words to remove from forget captions (e.g. the artist's name) when "
          "ablation_weight > 0, got none");
    check(ablation_inputs == "forget" || ablation_inputs == "retain" || ablation_inputs == "retain_same_caption", where,
          ".ablation_inputs: expected forget, retain or retain_same_caption, got '", ablation_inputs, "'");
    check(preservation_weight >= 0, where, ".preservation_weight: expected >= 0, got ", preservation_weight);
    check(preservation_weight == 0 || ablation_weight > 0, where,
          ".preservation_weight: expected 0 without caption ablation (it keeps the ablation's target caption), got ",
          preservation_weight, " with ablation_weight 0");
  }
};

// The retain and forget gradients of a step's micro-batches, summed apart for finish_step to
// combine (siss_combine, erasediff_combine).
class SplitGradients {
 public:
  std::vector<at::Tensor> retain, forget;

  // Back-propagates `loss` (times the context's loss scale; keeping its graph when asked) and
  // moves the parameters' .grad into `sum` (retain or forget).
  void backward(std::vector<at::Tensor>& sum, const at::Tensor& loss, const ObjectiveContext& context,
                bool keep_graph = false) {
    context.scaled(loss).backward({}, keep_graph);
    auto taken = take_gradients(context.parameters);
    if (sum.empty()) {
      sum = std::move(taken);
    } else {
      for (size_t i = 0; i < sum.size(); ++i) sum[i].add_(taken[i]);
    }
  }
  // The retain sum is complete (the step's last retain backward is done): in a data-parallel
  // run its sum over the ranks starts now, while the forget backward runs.
  void retain_complete(ObjectiveContext& context) {
    if (context.group && context.last_micro()) retain_sum_ = context.group->start_all_reduce_sum(retain, "the retain gradient sum");
  }
  // Sums both over the ranks of a data-parallel run (the combination needs the global norms),
  // divides them by the loss scale, and marks the step's gradients summed and unscaled.
  void sum_over_ranks(ObjectiveContext& context) {
    context.gradients_summed = true;
    if (context.group) {
      if (!retain_sum_.pending()) retain_sum_ = context.group->start_all_reduce_sum(retain, "the retain gradient sum");
      dist::PendingSum forget_sum = context.group->start_all_reduce_sum(forget, "the forget gradient sum");
      retain_sum_.wait();
      forget_sum.wait();
    }
    if (context.loss_scale != 1.0) {  // a power of two: exact (an overflow stays inf for the trainer to see)
      at::NoGradGuard no_grad;
      at::_foreach_mul_(retain, 1.0 / context.loss_scale);
      at::_foreach_mul_(forget, 1.0 / context.loss_scale);
    }
    context.gradients_unscaled = true;
  }
  // Writes the combined gradient into the parameters' .grad and forgets the sums.
  void finish(const std::vector<at::Tensor>& parameters, std::vector<at::Tensor> gradient) {
    for (size_t i = 0; i < parameters.size(); ++i) parameters[i].mutable_grad() = std::move(gradient[i]);
    clear();
  }
  void clear() {
    retain.clear();
    forget.clear();
  }

 private:
  dist::PendingSum retain_sum_;
};

// "siss" (importance-sampled mixture) or "siss_no_is" (two forwards).
class Siss : public ConfiguredObjective<SissConfig, ObjectiveNeeds{.forget = true, .retain = true}> {
 public:
  Siss(std::string name, SissConfig config)
      : ConfiguredObjective(std::move(name), config), importance_sampling_(name_ == "siss") {
    check(importance_sampling_ || config_.ablation_weight == 0, name_,
          ".ablation_weight: caption ablation is implemented for siss (importance sampling) only, got ",
          config_.ablation_weight, " for ", name_);
  }
  void begin_step(ObjectiveContext&) override { gradients_.clear(); }
  bool needs_reference() const override { return config_.ablation_weight > 0; }

  LossTerms micro_step(ObjectiveContext& context) override {
    ExampleBatch retain = context.next_retain(), forget = context.next_forget();
    ExampleBatch ablated;
    if (config_.ablation_weight > 0) {
      // Each forget caption's variant is drawn once; the model sees it, the frozen model sees it
      // without the ablated words.
      check(forget.captions.size() == static_cast<size_t>(forget.size()), "SISS: ablation_weight needs forget captions "
            "(words to remove); this forget set has precomputed conditioning");
      ablated = forget;
      for (size_t i = 0; i < forget.captions.size(); ++i) {
        forget.captions[i] = choose_caption_variant(forget.captions[i], context.generator);
        ablated.captions[i] = remove_words(forget.captions[i], config_.ablation_words);
      }
    }
    const at::Tensor& x = retain.images;
    const at::Tensor& a = forget.images;
    check(x.sizes() == a.sizes(), "SISS: retain and forget images must have the same shape, got ", x.sizes(), " and ",
          a.sizes());
    const int64_t count = x.size(0), rank = x.dim();
    at::Tensor t = context.training_timesteps(count);  // one t and eps shared by both terms
    at::Tensor eps = context.noise_like(x);
    at::Tensor gamma = context.schedule->signal_scale(t, rank).to(x.options());
    at::Tensor sigma = context.schedule->noise_scale(t, rank).to(x.options());
    models::Conditioning c_x = context.context(retain), c_a = context.context(forget);
    const bool shared = same_condition(retain, forget);
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    LossTerms terms;
    if (importance_sampling_) {
      // Mixture: each sample comes from the forget set with probability lambda.
      at::Tensor from_forget = (at::rand({count}, context.generator, at::kFloat) < config_.lambda)
                                   .view({count, 1, 1, 1}).to(x.device());
      at::Tensor m = at::where(from_forget, gamma * a + sigma * eps, gamma * x + sigma * eps);  // [B, C, H, W]
      // One noisy mixture under both conditions: the model runs what they share once.
      at::Tensor p_x, p_a;
      if (shared) {
        p_x = p_a = context.model->predict(m, t, c_x);
      } else {
        std::vector<at::Tensor> both = context.model->predict_each(m, t, {c_x, c_a});
        p_x = both[0];
        p_a = both[1];
      }
      SissTerms losses = siss_losses(p_x, p_a, m, x, a, gamma, sigma, config_.lambda, forget_time_weight(context, t),
                                     forget.masks, frequency_of(context), context.schedule->config().prediction_type,
                                     time_fraction(context, t));
      gradients_.backward(gradients_.retain, losses.retain * scale, context, /*keep_graph=*/true);
      if (config_.ablation_weight <= 0) gradients_.retain_complete(context);
      gradients_.backward(gradients_.forget, losses.forget * scale, context);
      terms = {{"retain", losses.retain.item<double>() * scale}, {"forget", losses.forget.item<double>() * scale},
               {"forget_share", from_forget.to(at::kDouble).mean().item<double>() * scale}};
      if (config_.ablation_weight > 0) {
        const at::Tensor& z = config_.ablation_inputs == "forget"                ? a
                              : config_.ablation_inputs == "retain_same_caption" ? same_caption_images(context, ablated)
                                                                                 : x;
        at::Tensor x_a = gamma * z + sigma * eps;
        at::Tensor anchor;
        {
          at::NoGradGuard no_grad;
          anchor = context.reference->predict(x_a, t, context.context(ablated));
        }
        // The forget captions encoded anew (their variants are already drawn): c_a's graph went
        // with the backward above. With preservation, the caption without the words gets the
        // same target at the same x_a (it keeps drawing what it drew); the model runs what the
        // two captions share once, and each term back-propagates apart as before.
        const bool preserve = config_.preservation_weight > 0;
        std::vector<at::Tensor> predictions =
            preserve ? context.model->predict_each(x_a, t, {context.context(forget), context.context(ablated)})
                     : std::vector<at::Tensor>{context.model->predict(x_a, t, context.context(forget))};
        at::Tensor ablation = denoising_error(predictions[0], anchor, ErrorReduction::sum).mean();
        gradients_.backward(gradients_.retain, ablation * (config_.ablation_weight * scale), context,
                            /*keep_graph=*/preserve);
        terms["ablation"] = ablation.item<double>() * scale;
        if (preserve) {
          at::Tensor kept = denoising_error(predictions[1], anchor, ErrorReduction::sum).mean();
          gradients_.backward(gradients_.retain, kept * (config_.preservation_weight * scale), context);
          terms["preservation"] = kept.item<double>() * scale;
        }
        gradients_.retain_complete(context);
      }
    } else {
      // Two forwards with the same t and eps (docs/methods.md §2.2), each against the target of
      // the model's parameterisation.
      at::Tensor p_x = context.model->predict(gamma * x + sigma * eps, t, c_x);
      at::Tensor retain_term =
          denoising_error(p_x, context.schedule->training_target(x, eps, t), ErrorReduction::sum).mean();
      gradients_.backward(gradients_.retain, retain_term * scale, context);
      gradients_.retain_complete(context);
      at::Tensor p_a = context.model->predict(gamma * a + sigma * eps, t, c_a);
      at::Tensor forget_term = forget_loss(context, p_a, context.schedule->training_target(a, eps, t), t, forget.masks);
      gradients_.backward(gradients_.forget, forget_term * scale, context);
      terms = {{"retain", retain_term.item<double>() * scale}, {"forget", forget_term.item<double>() * scale}};
    }
    return terms;
  }

  void finish_step(ObjectiveContext& context, LossTerms& terms) override {
    gradients_.sum_over_ranks(context);
    auto [gradient, retain_norm, forget_norm] = siss_combine(gradients_.retain, gradients_.forget, config_.scaling_norm);
    gradients_.finish(context.parameters, std::move(gradient));
    terms["retain_grad_norm"] = retain_norm;
    terms["forget_grad_norm"] = forget_norm;
  }

 private:
  // For each row of `ablated` (the forget captions without the ablated words), a retain image
  // drawn uniformly from those with that caption among their variants.   [B, C, H, W]
  at::Tensor same_caption_images(ObjectiveContext& context, const ExampleBatch& ablated) {
    const ExampleSet& retain = context.data->retain;
    if (retain_by_caption_.empty()) {
      check(retain.captions.size() == static_cast<size_t>(retain.size()), name_,
            ".ablation_inputs = retain_same_caption: expected a captioned retain set, got ",
            retain.captions.size(), " captions for ", retain.size(), " images");
      for (int64_t i = 0; i < retain.size(); ++i)
        for (const std::string& variant : all_caption_variants(retain.captions[i])) {
          auto& rows = retain_by_caption_[variant];
          if (rows.empty() || rows.back() != i) rows.push_back(i);
        }
    }
    std::vector<int64_t> rows;
    for (const std::string& caption : ablated.captions) {
      auto found = retain_by_caption_.find(caption);
      check(found != retain_by_caption_.end(), name_, ".ablation_inputs = retain_same_caption: expected retain images "
            "captioned '", caption, "' (a forget caption without the ablated words), got none in the ", retain.name);
      const auto& candidates = found->second;
      const int64_t pick = at::randint(static_cast<int64_t>(candidates.size()), {1}, context.generator, at::kLong).item<int64_t>();
      rows.push_back(candidates[pick]);
    }
    return retain.batch(rows).images;
  }

  bool importance_sampling_;
  SplitGradients gradients_;
  std::map<std::string, std::vector<int64_t>> retain_by_caption_;
};

struct NegGradConfig {
  double scale = 1.0;  // s: L = -s mean_B forget_error (the trainer's clip then bounds the step)
  template <typename V>
  void visit(V& v) {
    v("scale", scale);
  }
};

class NegGrad : public ConfiguredObjective<NegGradConfig, ObjectiveNeeds{.forget = true}> {
 public:
  using ConfiguredObjective::ConfiguredObjective;
  LossTerms micro_step(ObjectiveContext& context) override {
    ExampleBatch forget = context.next_forget();
    const NoisedBatch noisy = noise_batch(context, forget.images, forget_timesteps(context, forget.size()));
    at::Tensor prediction = context.model->predict(noisy.x_t, noisy.t, context.context(forget));
    at::Tensor forget_term = forget_loss(context, prediction, noisy.target, noisy.t, forget.masks);
    at::Tensor loss = -config_.scale * forget_term / static_cast<double>(context.accumulation_steps);
    context.backward(loss);
    return {{"forget", forget_term.item<double>() / context.accumulation_steps}};
  }
};

struct EraseDiffConfig {
  double eta = 1e-3;  // SISS repository: 1e-3 MNIST, 1e-2 Stable Diffusion
  template <typename V>
  void visit(V& v) {
    v("eta", eta);
  }
};

class EraseDiff : public ConfiguredObjective<EraseDiffConfig, ObjectiveNeeds{.forget = true, .retain = true}> {
 public:
  using ConfiguredObjective::ConfiguredObjective;
  void begin_step(ObjectiveContext&) override { gradients_.clear(); }
  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    ExampleBatch retain = context.next_retain(), forget = context.next_forget();
    check(retain.images.sizes() == forget.images.sizes(), "EraseDiff: retain and forget images must have the same "
                                                          "shape, got ", retain.images.sizes(), " and ", forget.images.sizes());
    // As the SISS repository's EraseDiff: both terms share t and eps. With a timestep window the
    // forget term's t comes from it and the retain term keeps the full range (docs/methods.md §2.3).
    const NoisedBatch noisy = noise_batch(context, forget.images, forget_timesteps(context, forget.size()));
    const at::Tensor retain_t = context.timesteps ? context.training_timesteps(retain.size()) : noisy.t;
    const NoisedBatch retain_noisy = noised(*context.schedule, retain.images, noisy.eps, retain_t);
    // Retain: the ordinary denoising loss (sum_d, mean over the batch).
    at::Tensor p_x = context.model->predict(retain_noisy.x_t, retain_noisy.t, context.context(retain));
    at::Tensor retain_term = denoising_error(p_x, retain_noisy.target, ErrorReduction::sum).mean();
    gradients_.backward(gradients_.retain, retain_term * scale, context);
    gradients_.retain_complete(context);
    // Forget: pull the prediction towards uniform noise u ~ U[0, 1)^d (SISS-repository EraseDiff).
    at::Tensor p_a = context.model->predict(noisy.x_t, noisy.t, context.context(forget));
    at::Tensor u = at::rand(forget.images.sizes(), context.generator, at::kFloat).to(forget.images.options());
    at::Tensor forget_term = forget_loss(context, p_a, u, noisy.t, forget.masks);
    gradients_.backward(gradients_.forget, forget_term * scale, context);
    return {{"retain", retain_term.item<double>() * scale}, {"forget", forget_term.item<double>() * scale}};
  }
  void finish_step(ObjectiveContext& context, LossTerms& terms) override {
    gradients_.sum_over_ranks(context);
    auto [gradient, factor] = erasediff_combine(gradients_.retain, gradients_.forget, config_.eta);
    gradients_.finish(context.parameters, std::move(gradient));
    terms["erasediff_factor"] = factor;
  }

 private:
  SplitGradients gradients_;
};

}  // namespace

void register_data_unlearning_objectives() {
  register_configured_objective<Siss, SissConfig>(
      "siss", "SISS with importance sampling: one mixture forward, retain and forget gradients combined as "
              "g_x - (N_s/|g_a|) g_a (Alberti et al. 2025)");
  register_configured_objective<Siss, SissConfig>("siss_no_is",
                                                  "SISS without importance sampling: two forwards with shared t and eps");
  register_configured_objective<NegGrad, NegGradConfig>("neggrad", "gradient ascent on the forget set (NegGrad)");
  register_configured_objective<EraseDiff, EraseDiffConfig>(
      "erasediff", "EraseDiff (SISS-repository form): forget predictions pulled to uniform noise, "
                   "g = g_x + max(eta - <g_x,g_a>/|g_a|^2, 0) g_a");
}

}  // namespace lethe::unlearn
