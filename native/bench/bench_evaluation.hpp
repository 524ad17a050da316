// The bench's default evaluation: its data (forget images and captions, class prompts,
// retain probes, the held-out test set) and settings, and the shipped descriptor and
// classifier.
#pragma once

#include <filesystem>

#include "bench/fashion_bench.hpp"
#include "eval/evaluation.hpp"

namespace lethe::dist {
class Group;
}

namespace lethe::bench {

// models/bench under resource_dir().
std::filesystem::path bench_model_dir();

eval::EvalData bench_eval_data(const FashionBench& bench, int64_t retain_probes = 50, uint64_t seed = 0);

// Default settings: 16 samples per forget caption, 50 per class, DDIM 25 steps, guidance
// 3, the copy threshold justified in models/README.md.
eval::EvalConfig bench_eval_config();

// The evaluation cache of the shipped models (base, retrained): evaluations are seeded, so
// their results at given settings never change. Files live in models/bench/eval-cache (or
// $LETHE_EVAL_CACHE), keyed by the model's hash and this context: descriptor and
// classifier hashes, the settings, the data hash (empty context: no caching).
std::string evaluation_cache_context(const std::string& descriptor_sha256, const std::string& classifier_sha256,
                                     const eval::EvalConfig& config, const std::string& data_sha256);
// evaluator.evaluate(model), or its cached result for a shipped model (then *cached_from
// names the cache file). A cache that cannot be written is skipped silently.
eval::ModelEvaluation evaluate_cached(eval::Evaluator& evaluator, models::DiffusionModel& model, const std::string& name,
                                      const std::string& context, const ProgressCallback& progress = {},
                                      std::string* cached_from = nullptr);

// An Evaluator on the bench's data (bench_eval_data) for `group` (null: one process). Its
// references (the descriptor's embeddings of the forget and retain images, the classifier's
// features of the real ones) come from the evaluation cache when an earlier evaluation stored
// them for the same descriptor, classifier and images (then *cached_from names the file); else
// they are computed, and rank 0 stores them. An empty descriptor or classifier hash (not from a
// file) computes them and stores nothing; an entry that cannot be read is computed again.
eval::Evaluator bench_evaluator(const eval::EvalConfig& config, const FashionBench& fashion,
                                std::shared_ptr<eval::Descriptor> descriptor,
                                std::shared_ptr<models::ClassifierImpl> classifier, const std::string& classifier_sha256,
                                const dist::Group* group = nullptr, std::string* cached_from = nullptr);

struct NamedModel {
  std::string name;  // "evaluated", "baseline", "reference"
  std::shared_ptr<models::DiffusionModel> model;
};

// The config with its sampling batch lowered so that every model's samples (10 forget
// captions and 10 class prompts at 28x28, all kept for the report) fit in the memory there
// is; a run that cannot fit is refused before sampling, naming `where` (the settings).
eval::EvalConfig fit_to_memory(eval::EvalConfig config, const std::vector<NamedModel>& models, const std::string& where);

// Evaluates models on the bench (the first is the evaluated one; optional "baseline" and
// "reference" entries add normalized SSCD and the direction score), writes report.json and
// report.png into `out` and returns the report. descriptor / classifier default to the
// shipped bench ones.
// With `group` of several ranks (dist/group.hpp) every rank calls this with the same arguments:
// the sampling is split over them (Evaluator::set_group), rank 0 alone writes the report and the
// cache, and every rank returns the report.
nlohmann::json evaluate_on_bench(const std::vector<NamedModel>& models, const std::filesystem::path& out,
                                 const eval::EvalConfig& config, std::shared_ptr<eval::Descriptor> descriptor = nullptr,
                                 std::shared_ptr<models::ClassifierImpl> classifier = nullptr,
                                 const ProgressCallback& progress = {}, const dist::Group* group = nullptr);

// What `lethe eval` is asked: the models, where the report goes, and the settings on top of
// bench_eval_config() (a settings file, then the options; -1 / "" = not given).
struct EvalRequest {
  std::string model, baseline, reference, out, descriptor, classifier, config_file, erased_concept, precision;
  bool no_attacks = false;
  int64_t seed = 0;
  int64_t samples_per_caption = -1;
  int64_t samples_per_class = -1;

  template <typename V>
  void visit(V& v) {
    v("model", model);
    v("baseline", baseline);
    v("reference", reference);
    v("out", out);
    v("descriptor", descriptor);
    v("classifier", classifier);
    v("config", config_file);
    v("erased_concept", erased_concept);
    v("precision", precision);
    v("no_attacks", no_attacks);
    v("seed", seed);
    v("samples_per_caption", samples_per_caption);
    v("samples_per_class", samples_per_class);
  }
};
struct EvalOutcome {
  nlohmann::json report;
  std::filesystem::path out;
  eval::EvalConfig config;
};
// Runs a request: the settings, the report folder (out/eval-<time> when none is given; a folder
// that holds a report is refused), the models, evaluate_on_bench. With `group`, as there.
EvalOutcome run_eval_request(const EvalRequest& request, const ProgressCallback& progress = {},
                             const dist::Group* group = nullptr);

}  // namespace lethe::bench
