// The concept-erasure baselines (docs/methods.md §5.3, §5.4).
// ESD, "Erasing Concepts from Diffusion Models" (Gandikota et al. 2023; docs/methods.md §5.3):
// the trained model's prediction under the erased concept c* is pulled towards the frozen
// model's negatively guided prediction, eps_ref(x_t, 0) - eta (eps_ref(x_t, c*) - eps_ref(x_t, 0)),
// at x_t the trained model itself draws for c* (DDIM with guidance, stopped at a random step),
// or at noised anchor images. UCE (unlearn/uce.hpp) edits the cross-attention in closed form.
#include <ATen/ATen.h>

#include "core/error.hpp"
#include "diffusion/sampler.hpp"
#include "unlearn/objectives/configured_objective.hpp"
#include "unlearn/objectives/denoising_terms.hpp"
#include "unlearn/objectives/registry.hpp"
#include "unlearn/uce.hpp"

namespace lethe::unlearn {

namespace {

struct EsdConfig {
  double negative_guidance = 1.0;   // eta (ESD's default)
  std::string x_t = "sampled";      // sampled (ESD) | anchor (anchor images noised in the window)
  int64_t sampling_steps = 50;      // sampled: DDIM grid (ESD: 50)
  double start_guidance = 3.0;      // sampled: guidance of that DDIM run (ESD: 3)

  template <typename V>
  void visit(V& v) {
    v("negative_guidance", negative_guidance);
    v("x_t", x_t);
    v("sampling_steps", sampling_steps);
    v("start_guidance", start_guidance);
  }
  void validate(const std::string& where) const {
    check(negative_guidance >= 0, where, ".negative_guidance: expected >= 0, got ", negative_guidance);
    check(x_t == "sampled" || x_t == "anchor", where, ".x_t: expected sampled or anchor, got '", x_t, "'");
    check(sampling_steps >= 2 && sampling_steps <= 1000, where, ".sampling_steps: expected 2 to 1000, got ", sampling_steps);
    check(start_guidance >= 0, where, ".start_guidance: expected >= 0, got ", start_guidance);
  }
};

class Esd : public ConfiguredObjective<EsdConfig, ObjectiveNeeds{.anchor = true, .reference = true}> {
 public:
  using ConfiguredObjective::ConfiguredObjective;

  LossTerms micro_step(ObjectiveContext& context) override {
    const double scale = 1.0 / static_cast<double>(context.accumulation_steps);
    ExampleBatch anchor = context.next_anchor();  // its shape (sampled) or its images (anchor)
    const int64_t count = anchor.size();
    models::Conditioning c_target = context.target_context(count);
    models::Conditioning c_empty = context.empty_context(count);
    at::Tensor x_t, t, masks = anchor.masks;
    if (config_.x_t == "anchor") {
      const NoisedBatch noisy = noise_batch(context, anchor.images, forget_timesteps(context, count));
      x_t = noisy.x_t;
      t = noisy.t;
    } else {
      std::tie(x_t, t) = sample_until(context, anchor.images, c_target, c_empty);
      masks = at::ones_like(masks);  // a generated image has no mask
    }
    at::Tensor e_empty = reference_predict(context, x_t, t, c_empty).to(at::kFloat);
    at::Tensor e_concept = reference_predict(context, x_t, t, c_target).to(at::kFloat);
    at::Tensor target = e_empty - config_.negative_guidance * (e_concept - e_empty);  // [B, C, H, W]
    at::Tensor prediction = context.model->predict(x_t, t, c_target);
    at::Tensor weight = forget_time_weight(context, t).to(target.device());  // [B] m(t)
    at::Tensor loss = (weight * selected_mean_error(context, prediction, target, masks, t)).mean();
    context.backward(loss * scale);
    return {{"esd", loss.item<double>() * scale}, {"t", t.to(at::kDouble).mean().item<double>() * scale}};
  }

 private:
  // ESD's x_t: start from noise, take k DDIM steps of the trained model under c* with guidance
  // (k uniform among the grid steps whose end lies in the timestep window; all without one),
  // no gradient. Returns (x_t [B, C, H, W], t [B]).
  std::pair<at::Tensor, at::Tensor> sample_until(ObjectiveContext& context, const at::Tensor& like,
                                                 const models::Conditioning& c_target,
                                                 const models::Conditioning& c_empty) {
    const diffusion::NoiseSchedule& schedule = *context.schedule;
    check(!schedule.is_flow(), "objective 'esd': x_t = sampled draws x_t with DDIM, which needs a discrete "
                               "(epsilon or v) schedule; this model is flow matching: use x_t = anchor");
    const std::vector<int64_t> grid =
        diffusion::inference_timesteps(schedule.num_timesteps(), config_.sampling_steps, "leading", 1);  // noisiest first
    std::vector<int64_t> allowed;  // grid indices k: x_t after k steps sits at grid[k]
    for (size_t k = 0; k < grid.size(); ++k)
      if (!context.timesteps || context.timesteps->weight(at::tensor({grid[k]})).item<double>() > 0)
        allowed.push_back(static_cast<int64_t>(k));
    check(!allowed.empty(), "objective 'esd': no step of the ", config_.sampling_steps,
          "-step DDIM grid lies in the timestep window");
    const int64_t pick = at::randint(static_cast<int64_t>(allowed.size()), {1}, context.generator).item<int64_t>();
    const int64_t k = allowed[pick];
    at::Tensor x = context.noise_like(like.to(at::kFloat)).to(like.options());
    {
      at::NoGradGuard no_grad;
      for (int64_t i = 0; i < k; ++i) {
        at::Tensor t = at::full({like.size(0)}, grid[i], at::kLong);
        at::Tensor guided = diffusion::classifier_free_guidance(context.model->predict(x, t, c_empty).to(at::kFloat),
                                                                context.model->predict(x, t, c_target).to(at::kFloat),
                                                                config_.start_guidance);
        x = diffusion::ddim_step(schedule, guided, grid[i], grid[i + 1], x.to(at::kFloat)).prev_sample.to(like.options());
      }
    }
    return {x, at::full({like.size(0)}, grid[k], at::kLong)};
  }
};

// UCE as a run's objective: no training; the run's copy of the model is edited once. The
// erased captions are the run's target captions, the destinations the anchor set's captions,
// and the preserved ones the retain set's (when there is one).
class Uce : public ConfiguredObjective<UceConfig, ObjectiveNeeds{.anchor = true}> {
 public:
  using ConfiguredObjective::ConfiguredObjective;
  bool edits_in_closed_form() const override { return true; }
  nlohmann::json edit(models::DiffusionModel& model, const TaskData& data) override {
    check(!data.anchor.conditioning.defined() && !data.anchor.captions.empty(),
          "objective 'uce': needs the anchor set's captions (the destination of the erased concept), got "
          "precomputed conditioning; UCE edits for the model's own text encoder");
    const UceReport report = uce_edit(model, data.target_captions, data.anchor.captions, data.retain.captions, config_);
    return {{"projections_edited", report.projections},
            {"erase_rows", report.erase_rows},
            {"preserve_rows", report.preserve_rows}};
  }
  LossTerms micro_step(ObjectiveContext&) override {
    throw Error("objective 'uce' is a closed-form edit; it has no training step");
  }
};

}  // namespace

void register_esd_objectives() {
  register_configured_objective<Esd, EsdConfig>(
      "esd", "ESD (Gandikota et al. 2023): the prediction under the erased concept pulled to the frozen model's "
             "negatively guided one, eps(x,0) - eta (eps(x,c*) - eps(x,0)), at x_t the model draws for the concept");
  register_configured_objective<Uce, UceConfig>(
      "uce", "UCE (Gandikota et al. 2024): a closed-form edit of the cross-attention key/value projections that maps "
             "the erased captions' embeddings to the anchor's and keeps the retain captions' (seconds, no training)");
}

}  // namespace lethe::unlearn
