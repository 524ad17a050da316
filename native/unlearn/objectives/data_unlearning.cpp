// Data-unlearning objectives of the SISS paper and its repository (docs/methods.md §2):
// SISS with importance sampling, SISS without IS (two forwards), NegGrad and EraseDiff.
// The forget term honours the time window, the frequency mask and spatial masks (§3).
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "io/json_config.hpp"
#include "unlearn/losses.hpp"
#include "unlearn/objectives/registry.hpp"

namespace lethe::unlearn {

namespace {

struct SissConfig {
  double lambda = 0.5;         // mixture weight: probability a mixture sample comes from the forget set
  // N_s: |g_a| is rescaled to this (sum_d reduction). The SISS repository uses 5 on MNIST; its
  // README says ~10% of |g_x|, which is 60-600 on the bench (bench/unlearning.json).
  double scaling_norm = 30.0;

  template <typename V>
  void visit(V& v) {
    v("lambda", lambda);
    v("scaling_norm", scaling_norm);
  }
  void validate(const std::string& where) const {
    check(lambda > 0 && lambda < 1, where, ".lambda: expected in (0, 1), got ", lambda);
    check(scaling_norm >= 0, where, ".scaling_norm: expected >= 0, got ", scaling_norm);
  }
};

// Accumulates the retain and forget gradients of the micro-steps separately.
class SplitGradients {
 public:
  void add(std::vector<at::Tensor>& buffer, const std::vector<at::Tensor>& parameters) {
    auto taken = take_gradients(parameters);
    if (buffer.empty()) {
      buffer = std::move(taken);
    } else {
      for (size_t i = 0; i < buffer.size(); ++i) buffer[i].add_(taken[i]);
    }
  }
  std::vector<at::Tensor> retain, forget;
  void clear() {
    retain.clear();
    forget.clear();
  }
};

void write_gradients(const std::vector<at::Tensor>& parameters, const std::vector<at::Tensor>& gradient) {
  at::NoGradGuard no_grad;
  for (size_t i = 0; i < parameters.size(); ++i) {
    at::Tensor parameter = parameters[i];
    parameter.mutable_grad() = gradient[i].clone();
  }
}

class Siss : public Objective {
 public:
  Siss(SissConfig config, bool importance_sampling) : config_(config), importance_sampling_(importance_sampling) {}
  std::string name() const override { return importance_sampling_ ? "siss" : "siss_no_is"; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
  bool needs_forget() const override { return true; }
  bool needs_retain() const override { return true; }
  void begin_step(ObjectiveContext&) override { gradients_.clear(); }

  LossTerms micro_step(ObjectiveContext& context) override {
    ExampleBatch retain = context.next_retain(), forget = context.next_forget();
    const at::Tensor& x = retain.images;
    const at::Tensor& a = forget.images;
    check(x.sizes() == a.sizes(), "SISS: retain and forget images must have the same shape, got ", x.sizes(), " and ",
          a.sizes());
    const int64_t count = x.size(0), rank = x.dim();
    at::Tensor t = context.uniform_timesteps(count);  // one t and eps shared by both terms
    at::Tensor eps = context.noise_like(x);
    at::Tensor gamma = context.schedule->sqrt_alpha_cumprod(t, rank).to(x.options());
    at::Tensor sigma = context.schedule->sqrt_one_minus_alpha_cumprod(t, rank).to(x.options());
    at::Tensor c_x = context.context(retain), c_a = context.context(forget);
    const bool shared = same_condition(retain, forget);
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    LossTerms terms;
    if (importance_sampling_) {
      // Mixture: each sample comes from the forget set with probability lambda.
      at::Tensor from_forget = (at::rand({count}, context.generator, at::kFloat) < config_.lambda)
                                   .view({count, 1, 1, 1}).to(x.device());
      at::Tensor m = at::where(from_forget, gamma * a + sigma * eps, gamma * x + sigma * eps);  // [B, C, H, W]
      at::Tensor p_x = context.model->predict(m, t, c_x);
      at::Tensor p_a = shared ? p_x : context.model->predict(m, t, c_a);
      SissTerms losses = siss_losses(p_x, p_a, m, x, a, gamma, sigma, config_.lambda, forget_time_weight(context, t),
                                     forget.masks, frequency_of(context));
      (losses.retain * scale).backward({}, /*retain_graph=*/true);
      gradients_.add(gradients_.retain, context.parameters);
      (losses.forget * scale).backward();
      gradients_.add(gradients_.forget, context.parameters);
      terms = {{"retain", losses.retain.item<double>() * scale}, {"forget", losses.forget.item<double>() * scale},
               {"forget_share", from_forget.to(at::kDouble).mean().item<double>() * scale}};
    } else {
      // Two forwards with the same t and eps (docs/methods.md §2.2).
      at::Tensor p_x = context.model->predict(gamma * x + sigma * eps, t, c_x);
      at::Tensor retain_loss = (p_x.to(at::kFloat) - eps).pow(2).flatten(1).sum(1).mean();
      (retain_loss * scale).backward();
      gradients_.add(gradients_.retain, context.parameters);
      at::Tensor p_a = context.model->predict(gamma * a + sigma * eps, t, c_a);
      at::Tensor forget_loss =
          (forget_time_weight(context, t).to(x.device()) * forget_error(p_a.to(at::kFloat) - eps, forget.masks, frequency_of(context)))
              .mean();
      (forget_loss * scale).backward();
      gradients_.add(gradients_.forget, context.parameters);
      terms = {{"retain", retain_loss.item<double>() * scale}, {"forget", forget_loss.item<double>() * scale}};
    }
    return terms;
  }

  void finish_step(ObjectiveContext& context, LossTerms& terms) override {
    auto [gradient, retain_norm, forget_norm] = siss_combine(gradients_.retain, gradients_.forget, config_.scaling_norm);
    write_gradients(context.parameters, gradient);
    terms["retain_grad_norm"] = retain_norm;
    terms["forget_grad_norm"] = forget_norm;
    gradients_.clear();
  }

 private:
  SissConfig config_;
  bool importance_sampling_;
  SplitGradients gradients_;
};

struct NegGradConfig {
  double scale = 1.0;  // s: L = -s mean_B forget_error (the trainer's clip then bounds the step)
  template <typename V>
  void visit(V& v) {
    v("scale", scale);
  }
};

class NegGrad : public Objective {
 public:
  explicit NegGrad(NegGradConfig config) : config_(config) {}
  std::string name() const override { return "neggrad"; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
  bool needs_forget() const override { return true; }
  LossTerms micro_step(ObjectiveContext& context) override {
    ExampleBatch forget = context.next_forget();
    const at::Tensor& a = forget.images;
    at::Tensor t = forget_timesteps(context, a.size(0));
    at::Tensor eps = context.noise_like(a);
    at::Tensor a_t = context.schedule->add_noise(a, eps, t);
    at::Tensor target = context.schedule->training_target(a, eps, t);
    at::Tensor error = forget_error(context.model->predict(a_t, t, context.context(forget)).to(at::kFloat) - target,
                                    forget.masks, frequency_of(context));  // [B]
    at::Tensor forget_loss = (forget_time_weight(context, t).to(a.device()) * error).mean();
    at::Tensor loss = -config_.scale * forget_loss / static_cast<double>(context.accumulation_steps);
    loss.backward();
    return {{"forget", forget_loss.item<double>() / context.accumulation_steps}};
  }

 private:
  NegGradConfig config_;
};

struct EraseDiffConfig {
  double eta = 1e-3;  // SISS repository: 1e-3 MNIST, 1e-2 Stable Diffusion
  template <typename V>
  void visit(V& v) {
    v("eta", eta);
  }
};

class EraseDiff : public Objective {
 public:
  explicit EraseDiff(EraseDiffConfig config) : config_(config) {}
  std::string name() const override { return "erasediff"; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
  bool needs_forget() const override { return true; }
  bool needs_retain() const override { return true; }
  void begin_step(ObjectiveContext&) override { gradients_.clear(); }
  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    ExampleBatch retain = context.next_retain(), forget = context.next_forget();
    // Retain: the ordinary denoising loss (sum_d, mean over the batch).
    at::Tensor t_x = context.uniform_timesteps(retain.size());
    at::Tensor eps_x = context.noise_like(retain.images);
    at::Tensor p_x = context.model->predict(context.schedule->add_noise(retain.images, eps_x, t_x), t_x, context.context(retain));
    at::Tensor retain_loss =
        (p_x.to(at::kFloat) - context.schedule->training_target(retain.images, eps_x, t_x)).pow(2).flatten(1).sum(1).mean();
    (retain_loss * scale).backward();
    gradients_.add(gradients_.retain, context.parameters);
    // Forget: pull the prediction towards uniform noise u ~ U[0, 1)^d (SISS-repository EraseDiff).
    at::Tensor t_a = forget_timesteps(context, forget.size());
    at::Tensor eps_a = context.noise_like(forget.images);
    at::Tensor u = at::rand(forget.images.sizes(), context.generator, at::kFloat).to(forget.images.options());
    at::Tensor p_a = context.model->predict(context.schedule->add_noise(forget.images, eps_a, t_a), t_a, context.context(forget));
    at::Tensor forget_loss =
        (forget_time_weight(context, t_a).to(u.device()) * forget_error(p_a.to(at::kFloat) - u, forget.masks, frequency_of(context)))
            .mean();
    (forget_loss * scale).backward();
    gradients_.add(gradients_.forget, context.parameters);
    return {{"retain", retain_loss.item<double>() * scale}, {"forget", forget_loss.item<double>() * scale}};
  }
  void finish_step(ObjectiveContext& context, LossTerms& terms) override {
    auto [gradient, factor] = erasediff_combine(gradients_.retain, gradients_.forget, config_.eta);
    write_gradients(context.parameters, gradient);
    terms["erasediff_factor"] = factor;
    gradients_.clear();
  }

 private:
  EraseDiffConfig config_;
  SplitGradients gradients_;
};

}  // namespace

void register_data_unlearning_objectives() {
  register_objective("siss", "SISS with importance sampling: one mixture forward, retain and forget gradients combined "
                             "as g_x - (N_s/|g_a|) g_a (Alberti et al. 2025)",
                     [](const nlohmann::json& json, const std::string& where) {
                       return std::make_unique<Siss>(io::read_config<SissConfig>(json, where), true);
                     });
  register_objective("siss_no_is", "SISS without importance sampling: two forwards with shared t and eps",
                     [](const nlohmann::json& json, const std::string& where) {
                       return std::make_unique<Siss>(io::read_config<SissConfig>(json, where), false);
                     });
  register_objective("neggrad", "gradient ascent on the forget set (NegGrad)",
                     [](const nlohmann::json& json, const std::string& where) {
                       return std::make_unique<NegGrad>(io::read_config<NegGradConfig>(json, where));
                     });
  register_objective("erasediff", "EraseDiff (SISS-repository form): forget predictions pulled to uniform noise, "
                                  "g = g_x + max(eta - <g_x,g_a>/|g_a|^2, 0) g_a",
                     [](const nlohmann::json& json, const std::string& where) {
                       return std::make_unique<EraseDiff>(io::read_config<EraseDiffConfig>(json, where));
                     });
}

}  // namespace lethe::unlearn
