// Evaluating a native diffusion model for unlearning: forget-caption generations scored
// with a copy descriptor (memorization rate, SSCD), class-prompt generations scored with a
// classifier (conditional accuracy) and compared with real images in the classifier's
// feature space (FID, KID), noise-injection probes (SISS protocol: noise the image to t,
// denoise, SSCD to the original) and the denoising loss on forget vs retain images.
// Everything is seeded: the same call gives the same numbers.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include <nlohmann/json.hpp>

#include "core/precision.hpp"
#include "core/progress.hpp"
#include "diffusion/sampling.hpp"
#include "eval/attacks.hpp"
#include "eval/descriptor.hpp"
#include "io/json_config.hpp"
#include "models/classifier.hpp"
#include "models/diffusion_model.hpp"

namespace lethe::dist {
class Group;
}

namespace lethe::eval {

struct EvalConfig {
  int64_t samples_per_forget_caption = 16;
  int64_t samples_per_class = 50;
  diffusion::SamplingOptions sampling;   // sampler settings for all generations (seed included)
  double threshold = 0.5;                // SSCD copy threshold
  bool match_any_forget = false;         // score against any forget image, not just the caption's own
  int64_t probe_timestep = 250;          // noise-injection probe start (of 1000)
  int64_t retain_probes = 50;
  int64_t fid_real_images = 2000;
  std::vector<int64_t> loss_timesteps = {100, 250, 500, 750};
  int64_t margin_neighbours = 16;
  // The class a concept-erasure run erased (a class prompt's first word), or "" for the data
  // task: it decides what the attacks try to bring back (attacks.hpp).
  std::string erased_concept;
  AttackConfig attacks;
  // The models' compute precision while sampling and attacking (core/precision.hpp).
  std::string precision = kDefaultPrecision;

  template <typename V>
  void visit(V& v) {
    v("samples_per_forget_caption", samples_per_forget_caption);
    v("samples_per_class", samples_per_class);
    v("sampling", sampling);
    v("threshold", threshold);
    v("match_any_forget", match_any_forget);
    v("probe_timestep", probe_timestep);
    v("retain_probes", retain_probes);
    v("fid_real_images", fid_real_images);
    v("loss_timesteps", loss_timesteps);
    v("margin_neighbours", margin_neighbours);
    v("erased_concept", erased_concept);
    v("attacks", attacks);
    v("precision", precision);
  }
  void validate(const std::string& where) const;
};

// What the evaluation runs on. Images are pixels in [0, 1]; the model space is [-1, 1].
struct EvalData {
  at::Tensor forget_images;                  // [F, C, H, W]
  std::vector<std::string> forget_captions;  // F
  std::vector<std::string> class_captions;   // one prompt per class
  std::vector<int64_t> class_labels;         // classifier label of each class prompt
  at::Tensor retain_images;                  // [R, C, H, W] probes and margin neighbours
  std::vector<std::string> retain_captions;  // R
  at::Tensor real_images;                    // [N, C, H, W] held-out reference for FID/KID
  at::Tensor real_labels;                    // [N] int64 class of each real image (optional: without it
                                             // the concept task has no fid_other_classes)
};

struct ModelEvaluation {
  std::string name;                          // "evaluated", "baseline", "reference"
  std::map<std::string, double> metrics;
  at::Tensor forget_samples;                 // [F * K, C, H, W] pixels, caption-major
  at::Tensor forget_scores;                  // [F * K] best SSCD of each
  at::Tensor forget_descriptors;             // [F * K, D]
  at::Tensor class_samples;                  // [classes * S, C, H, W]
  at::Tensor class_predictions;              // [classes * S]
  nlohmann::json attacks;                    // attacks.hpp's details (null when attacks are off)
  at::Tensor attack_samples;                 // [N * K, C, H, W] drawn with the prompt attack's embeddings
  at::Tensor attack_success;                 // [N * K] bool
  double seconds = 0.0;
  // Where the seconds went, by stage ("forget captions", "class prompts", "probes", ...).
  std::map<std::string, double> stage_seconds;
};

// What every model's generations are compared with, computed from the data alone (fp32,
// inference mode): the same for every model evaluated on that data, so a caller may keep them.
struct EvalReferences {
  at::Tensor forget_descriptors;  // [F, D] the descriptor's embeddings of the forget images
  at::Tensor retain_descriptors;  // [R, D] and of the retain images
  at::Tensor real_features;       // [min(fid_real_images, N), K] the classifier's features of the first real images
};

// How many real images the references hold: the first min(fid_real_images, N).
int64_t reference_real_images(const EvalConfig& config, const EvalData& data);

class Evaluator {
 public:
  // `references`: what an earlier Evaluator on the same data, descriptor and classifier computed
  // (references()); checked for shape, used instead of computing them again. Without, computed.
  Evaluator(EvalConfig config, EvalData data, std::shared_ptr<Descriptor> descriptor,
            std::shared_ptr<models::ClassifierImpl> classifier, std::optional<EvalReferences> references = std::nullopt);
  ModelEvaluation evaluate(models::DiffusionModel& model, const std::string& name, const ProgressCallback& progress = {});
  // Adds the cross-model metrics: normalized SSCD (P1, needs baseline and reference) and the
  // direction score (needs baseline) to `evaluated`.
  void compare(ModelEvaluation& evaluated, const ModelEvaluation* baseline, const ModelEvaluation* reference) const;
  const EvalConfig& config() const { return config_; }
  // Splits the sampling of evaluate() over the ranks of `group` (null: one process): every rank
  // draws the same noise, each forward runs on this rank's share of the rows and is gathered
  // (dist/sharded_denoiser.hpp), so every rank gets the whole result. The attacks run whole on
  // every rank. `group` must outlive the evaluations.
  void set_group(const dist::Group* group) { group_ = group; }
  const dist::Group* group() const { return group_; }
  const EvalData& data() const { return data_; }
  const Descriptor& descriptor() const { return *descriptor_; }
  const models::ClassifierImpl& classifier() const { return *classifier_; }
  EvalReferences references() const { return {forget_descriptors_, retain_descriptors_, real_features_}; }

 private:
  EvalConfig config_;
  EvalData data_;
  std::shared_ptr<Descriptor> descriptor_;
  std::shared_ptr<models::ClassifierImpl> classifier_;
  at::Tensor forget_descriptors_, retain_descriptors_, real_features_;
  at::Tensor real_labels_;  // [real] the labels of real_features_' rows (undefined when unknown)
  // What the attacks aim at: the forget images with their captions (data task) or images of
  // the erased class with its prompt (concept task).
  AttackTargets attack_targets_;
  int64_t concept_label_ = -1;  // the erased class's label, -1 for the data task
  const dist::Group* group_ = nullptr;
  at::Tensor attack_descriptors_;  // [N, D] of the data task's targets
  // The metrics of evaluate() without the attacks, in inference mode.
  void measure(models::DiffusionModel& model, ModelEvaluation& result, const ProgressCallback& progress);
  std::pair<at::Tensor, at::Tensor> judge(const at::Tensor& samples, const at::Tensor& target) const;
};

// The text the report gives for "normalized_sscd".
extern const char* const kNormalizedSscdDefinition;

}  // namespace lethe::eval
