#include "eval/evaluation.hpp"

#include <chrono>
#include <optional>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "dist/group.hpp"
#include "dist/sharded_denoiser.hpp"
#include "eval/fid.hpp"
#include "eval/sscd_metrics.hpp"

namespace lethe::eval {

const char* const kNormalizedSscdDefinition =
    "P1 retrain-anchored progress (docs/evaluation.md §2.1, a project proposal; the paper's Eq. 13 was not available): "
    "(S_evaluated - S_reference) / (S_baseline - S_reference), S = mean SSCD of forget-caption generations to their "
    "forget image, same seeds for every model; 1 = nothing forgotten, 0 = like the retrained model";

void EvalConfig::validate(const std::string& where) const {
  check(samples_per_forget_caption >= 1, where, ".samples_per_forget_caption: expected >= 1, got ",
        samples_per_forget_caption);
  check(samples_per_class >= 1, where, ".samples_per_class: expected >= 1, got ", samples_per_class);
  check(threshold > -1 && threshold < 1, where, ".threshold: expected in (-1, 1), got ", threshold);
  check(probe_timestep >= 0, where, ".probe_timestep: expected >= 0, got ", probe_timestep);
  sampling.validate(where + ".sampling");
  attacks.validate(where + ".attacks");
  parse_precision(precision, where + ".precision");
}

namespace {


// Classifier features and logits in batches. pixels [N, C, H, W] -> ([N, F], [N, classes])
std::pair<at::Tensor, at::Tensor> classify_all(models::ClassifierImpl& classifier, const at::Tensor& pixels) {
  c10::InferenceMode inference;
  std::vector<at::Tensor> features, logits;
  for (int64_t first = 0; first < pixels.size(0); first += 256) {
    auto [f, l] = classifier.classify(pixels.narrow(0, first, std::min<int64_t>(256, pixels.size(0) - first)));
    features.push_back(f);
    logits.push_back(l);
  }
  return {at::cat(features), at::cat(logits)};
}

std::vector<std::string> repeat_each(const std::vector<std::string>& items, int64_t times) {
  std::vector<std::string> out;
  for (const auto& item : items)
    for (int64_t k = 0; k < times; ++k) out.push_back(item);
  return out;
}

}  // namespace

int64_t reference_real_images(const EvalConfig& config, const EvalData& data) {
  return std::min<int64_t>(config.fid_real_images, data.real_images.size(0));
}

Evaluator::Evaluator(EvalConfig config, EvalData data, std::shared_ptr<Descriptor> descriptor,
                     std::shared_ptr<models::ClassifierImpl> classifier, std::optional<EvalReferences> references)
    : config_(std::move(config)), data_(std::move(data)), descriptor_(std::move(descriptor)),
      classifier_(std::move(classifier)) {
  config_.validate("evaluation");
  check(data_.forget_images.defined() && data_.forget_images.size(0) == static_cast<int64_t>(data_.forget_captions.size()),
        "evaluation: one caption per forget image required");
  check(data_.class_captions.size() == data_.class_labels.size(), "evaluation: one label per class prompt required");
  const int64_t real = reference_real_images(config_, data_);
  if (references) {
    // Rows as the data has them; the widths are the descriptor's and the classifier's (checked
    // against each other: the forget and retain embeddings come from one descriptor).
    const auto expect = [](const at::Tensor& t, const char* what, int64_t rows) {
      check(t.defined() && t.dim() == 2 && t.size(0) == rows && t.scalar_type() == at::kFloat,
            "evaluation references .", what, ": expected a float32 [", rows, ", width] tensor, got ",
            t.defined() ? str(t.scalar_type(), " ", t.sizes()) : std::string("none"));
    };
    expect(references->forget_descriptors, "forget_descriptors", data_.forget_images.size(0));
    expect(references->retain_descriptors, "retain_descriptors", data_.retain_images.size(0));
    expect(references->real_features, "real_features", real);
    check(references->forget_descriptors.size(1) == references->retain_descriptors.size(1),
          "evaluation references: expected forget and retain descriptors of one width, got ",
          references->forget_descriptors.size(1), " and ", references->retain_descriptors.size(1));
    forget_descriptors_ = std::move(references->forget_descriptors);
    retain_descriptors_ = std::move(references->retain_descriptors);
    real_features_ = std::move(references->real_features);
  } else {
    forget_descriptors_ = embed_batched(*descriptor_, data_.forget_images);
    retain_descriptors_ = embed_batched(*descriptor_, data_.retain_images);
    real_features_ = classify_all(*classifier_, data_.real_images.narrow(0, 0, real)).first;
  }
  if (data_.real_labels.defined()) {
    check(data_.real_labels.dim() == 1 && data_.real_labels.size(0) == data_.real_images.size(0),
          "evaluation: expected one label per real image, got ", data_.real_labels.sizes(), " for ",
          data_.real_images.sizes());
    real_labels_ = data_.real_labels.narrow(0, 0, real).to(at::kLong);
  }

  if (config_.erased_concept.empty()) {
    attack_targets_ = {data_.forget_images, data_.forget_captions};
    attack_descriptors_ = forget_descriptors_;
    return;
  }
  // Concept task: the retain images of the erased class with its prompt, as many as there are
  // forget images (at least 2: half are relearned, half held out).
  std::vector<std::string> names;
  for (size_t c = 0; c < data_.class_captions.size(); ++c) {
    const std::string& caption = data_.class_captions[c];
    names.push_back(caption.substr(0, caption.find(' ')));
    if (names.back() != config_.erased_concept) continue;
    concept_label_ = data_.class_labels[c];
    std::vector<int64_t> picks;
    const int64_t wanted = std::max<int64_t>(2, data_.forget_images.size(0));
    for (size_t i = 0; i < data_.retain_captions.size() && static_cast<int64_t>(picks.size()) < wanted; ++i)
      if (data_.retain_captions[i] == caption) picks.push_back(static_cast<int64_t>(i));
    check(picks.size() >= 2, "evaluation.erased_concept: expected at least 2 retain images of '", config_.erased_concept,
          "' for the attacks, got ", picks.size());
    attack_targets_.images = data_.retain_images.index_select(0, at::tensor(picks, at::kLong));
    attack_targets_.captions.assign(picks.size(), caption);
  }
  check(concept_label_ >= 0, "evaluation.erased_concept: expected one of the evaluated classes (", join(names, ", "),
        ") or \"\" for the data task, got '", config_.erased_concept, "'");
}

std::pair<at::Tensor, at::Tensor> Evaluator::judge(const at::Tensor& samples, const at::Tensor& target) const {
  c10::InferenceMode inference;
  if (concept_label_ >= 0) {
    at::Tensor probabilities = classify_all(*classifier_, samples).second.softmax(1);  // [M, classes]
    return {probabilities.argmax(1) == concept_label_, probabilities.select(1, concept_label_)};
  }
  at::Tensor scores = best_match(similarity_matrix(embed_batched(*descriptor_, samples), attack_descriptors_), target);
  return {scores >= config_.threshold, scores};
}

ModelEvaluation Evaluator::evaluate(models::DiffusionModel& model, const std::string& name,
                                    const ProgressCallback& progress) {
  const auto started = std::chrono::steady_clock::now();
  const PrecisionScope precision(resolve_precision(config_.precision, "evaluation settings .precision", model.device()).precision);
  ModelEvaluation result;
  result.name = name;
  measure(model, result, progress);
  if (config_.attacks.enabled) {
    ProgressCallback named;
    if (progress)
      named = [&](const ProgressEvent& event) {
        ProgressEvent renamed = event;
        renamed.stage = name + ": " + event.stage;
        progress(renamed);
      };
    AttackReport attacks = run_attacks(model, attack_targets_,
                                       [this](const at::Tensor& samples, const at::Tensor& target) { return judge(samples, target); },
                                       config_.attacks, config_.sampling, named);
    for (const auto& [metric, value] : attacks.metrics) result.metrics[metric] = value;
    result.attacks = attacks.details;
    result.attack_samples = attacks.prompt_samples;
    result.attack_success = attacks.prompt_success;
    for (const auto& [stage, seconds] : attacks.stage_seconds) result.stage_seconds[stage] = seconds;
  }
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  result.metrics["wall_seconds"] = result.seconds;
  return result;
}

void Evaluator::measure(models::DiffusionModel& model, ModelEvaluation& result, const ProgressCallback& progress) {
  const std::string& name = result.name;
  c10::InferenceMode inference;
  StageClock clock;
  const std::vector<int64_t> shape = {data_.forget_images.size(1), data_.forget_images.size(2), data_.forget_images.size(3)};
  at::Tensor uncond = model.context_for({""});  // [1, L, D]
  // What samples and predicts: the model, or its sharded view over the ranks of a group.
  std::optional<dist::ShardedDenoiser> sharded;
  if (dist::spans_ranks(group_)) sharded.emplace(model, *group_, "the evaluated model");
  models::Denoiser& denoiser = sharded ? static_cast<models::Denoiser&>(*sharded) : model;
  auto stage = [&](const std::string& label) {
    return [&, label](const ProgressEvent& event) {
      if (!progress) return;
      ProgressEvent named = event;
      named.stage = name + ": " + label;
      progress(named);
    };
  };

  // Forget captions: K samples each, scored against their own forget image (or any).
  const int64_t per_caption = config_.samples_per_forget_caption;
  const int64_t forget_count = data_.forget_images.size(0);
  at::Tensor context = model.context_for(repeat_each(data_.forget_captions, per_caption));
  result.forget_samples = data::to_pixels(diffusion::sample(denoiser, model.schedule(), context, uncond, shape, config_.sampling,
                                                      {}, stage("forget captions")));
  result.forget_descriptors = embed_batched(*descriptor_, result.forget_samples);
  at::Tensor assigned = at::arange(forget_count, at::kLong).repeat_interleave(per_caption);
  if (config_.match_any_forget) assigned.fill_(-1);
  result.forget_scores =
      best_match(similarity_matrix(result.forget_descriptors, forget_descriptors_), assigned);
  auto& m = result.metrics;
  m["memorization_rate"] = memorization_rate(result.forget_scores, config_.threshold);
  m["sscd_mean"] = result.forget_scores.mean().item<double>();
  m["sscd_p95"] = percentile(result.forget_scores, 95);
  auto margin = sscd_margin(result.forget_descriptors, forget_descriptors_, at::arange(forget_count, at::kLong).repeat_interleave(per_caption),
                            retain_descriptors_, config_.margin_neighbours);
  m["sscd_margin_mean"] = margin.mean;
  m["sscd_margin_fraction_negative"] = margin.fraction_negative;
  result.stage_seconds["forget captions"] = clock.lap();

  // Class prompts: conditional accuracy and FID/KID in the classifier's feature space.
  const int64_t per_class = config_.samples_per_class;
  at::Tensor class_context = model.context_for(repeat_each(data_.class_captions, per_class));
  diffusion::SamplingOptions class_sampling = config_.sampling;
  class_sampling.seed = config_.sampling.seed + 1000003;
  result.class_samples = data::to_pixels(diffusion::sample(denoiser, model.schedule(), class_context, uncond, shape, class_sampling,
                                                     {}, stage("class prompts")));
  auto [features, logits] = classify_all(*classifier_, result.class_samples);
  at::Tensor predictions = logits.argmax(1);  // [classes * S]
  result.class_predictions = predictions;
  std::vector<int64_t> expected_labels;
  for (int64_t label : data_.class_labels)
    for (int64_t k = 0; k < per_class; ++k) expected_labels.push_back(label);
  const at::Tensor expected = at::tensor(expected_labels, at::kLong);  // [classes * S]
  at::Tensor correct = (predictions == expected).to(at::kDouble);     // [classes * S]
  m["class_accuracy"] = correct.mean().item<double>();
  for (size_t c = 0; c < data_.class_captions.size(); ++c) {
    const std::string& caption = data_.class_captions[c];
    const std::string name = caption.substr(0, caption.find(' '));
    m["class_accuracy_" + name] = correct.narrow(0, static_cast<int64_t>(c) * per_class, per_class).mean().item<double>();
  }
  m["fid"] = frechet_distance(features, real_features_);
  // Concept task: FID of the classes that should be kept. The FID above also compares the erased
  // class's samples with real images of it, so it rises with the erasure itself.
  if (concept_label_ >= 0 && real_labels_.defined())
    m["fid_other_classes"] =
        frechet_distance_without(features, expected, real_features_, real_labels_, concept_label_);
  auto kid = kernel_distance(features, real_features_, 20, std::min<int64_t>(200, features.size(0)), config_.sampling.seed);
  m["kid_mean"] = kid.mean;
  m["kid_std"] = kid.std;
  result.stage_seconds["class prompts"] = clock.lap();

  // Noise-injection probes: noise to probe_timestep, denoise, SSCD to the original.
  diffusion::SamplingOptions probe = config_.sampling;
  probe.start_timestep = config_.probe_timestep;
  probe.seed = config_.sampling.seed + 2000003;
  at::Tensor forget_probe = data::to_pixels(diffusion::sample(denoiser, model.schedule(), model.context_for(data_.forget_captions),
                                                        uncond, shape, probe, data::to_model_space(data_.forget_images)));
  m["forget_probe_sscd"] =
      (embed_batched(*descriptor_, forget_probe) * forget_descriptors_).sum(1).mean().item<double>();
  const int64_t retain_count = std::min<int64_t>(config_.retain_probes, data_.retain_images.size(0));
  std::vector<std::string> retain_captions(data_.retain_captions.begin(), data_.retain_captions.begin() + retain_count);
  at::Tensor retain_probe = data::to_pixels(diffusion::sample(denoiser, model.schedule(), model.context_for(retain_captions), uncond,
                                                        shape, probe, data::to_model_space(data_.retain_images.narrow(0, 0, retain_count))));
  m["retain_probe_sscd"] = (embed_batched(*descriptor_, retain_probe) * retain_descriptors_.narrow(0, 0, retain_count))
                               .sum(1)
                               .mean()
                               .item<double>();
  result.stage_seconds["probes"] = clock.lap();

  // Likelihood proxy: the denoising loss at fixed timesteps with fixed noise.
  auto denoising_loss = [&](const at::Tensor& pixels, const std::vector<std::string>& captions) {
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(config_.sampling.seed + 3000017);
    at::Tensor x0 = data::to_model_space(pixels);
    at::Tensor ctx = model.context_for(captions);
    double total = 0;
    for (int64_t t : config_.loss_timesteps) {
      at::Tensor noise = at::randn(x0.sizes(), generator, at::kFloat);
      at::Tensor steps = at::full({x0.size(0)}, t, at::kLong);
      at::Tensor x_t = model.schedule().add_noise(x0, noise, steps);
      at::Tensor target = model.schedule().training_target(x0, noise, steps);
      total += (denoiser.predict(x_t, steps, ctx) - target).pow(2).mean().item<double>();
    }
    return total / static_cast<double>(config_.loss_timesteps.size());
  };
  m["forget_loss"] = denoising_loss(data_.forget_images, data_.forget_captions);
  m["retain_loss"] = denoising_loss(data_.retain_images.narrow(0, 0, retain_count), retain_captions);
  result.stage_seconds["denoising losses"] = clock.lap();
}

void Evaluator::compare(ModelEvaluation& evaluated, const ModelEvaluation* baseline, const ModelEvaluation* reference) const {
  if (baseline && reference) {
    const double original = baseline->metrics.at("sscd_mean"), retrained = reference->metrics.at("sscd_mean");
    if (std::abs(original - retrained) > 1e-9)
      evaluated.metrics["normalized_sscd"] = sscd_progress(evaluated.metrics.at("sscd_mean"), original, retrained);
  }
  if (baseline) {
    const int64_t per_caption = config_.samples_per_forget_caption;
    at::Tensor assigned = at::arange(data_.forget_images.size(0), at::kLong).repeat_interleave(per_caption);
    evaluated.metrics["sscd_direction"] =
        sscd_direction(baseline->forget_descriptors, evaluated.forget_descriptors, forget_descriptors_, assigned);
  }
}

}  // namespace lethe::eval
