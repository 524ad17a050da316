#include "bench/bench_evaluation.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "core/runtime.hpp"
#include "data/batching.hpp"
#include "data/idx.hpp"
#include "eval/report.hpp"

#include <chrono>

namespace lethe::bench {

std::filesystem::path bench_model_dir() { return resource_dir() / "models" / "bench"; }

eval::EvalData bench_eval_data(const FashionBench& bench, int64_t retain_probes, uint64_t seed) {
  eval::EvalData data;
  data.forget_images = to_pixels(bench.forget.images);
  data.forget_captions = bench.forget.captions;
  for (int64_t label = 0; label < static_cast<int64_t>(data::fashion_mnist_classes().size()); ++label) {
    data.class_captions.push_back(class_caption(label));
    data.class_labels.push_back(label);
  }
  // Retain images: a seeded sample of the retain set with plain class captions; the first
  // retain_probes are the noise-injection probes, all serve as margin neighbours.
  std::vector<int64_t> picks;
  const auto order = data::epoch_permutation(bench.train_clean.size(), seed + 77, 0);
  const int64_t count = std::min<int64_t>(std::max<int64_t>(retain_probes, 2000), bench.train_clean.size());
  for (int64_t i = 0; i < count; ++i) picks.push_back(order[i]);
  at::Tensor index = at::tensor(picks, at::kLong);
  data.retain_images = to_pixels(bench.train_clean.images.index_select(0, index));
  for (int64_t i : picks) {
    const std::string& variants = bench.train_clean.captions[i];
    data.retain_captions.push_back(class_caption(label_of_caption(variants)));
  }
  data.real_images = bench.test_images;
  return data;
}

eval::EvalConfig bench_eval_config() {
  eval::EvalConfig config;
  config.samples_per_forget_caption = 16;
  config.samples_per_class = 50;
  config.sampling.steps = 25;
  config.sampling.guidance = 3.0;
  config.sampling.seed = 0;
  config.threshold = 0.5;
  config.retain_probes = 50;
  config.fid_real_images = 2000;
  return config;
}

nlohmann::json evaluate_on_bench(const std::vector<NamedModel>& models, const std::filesystem::path& out,
                                 const eval::EvalConfig& config, std::shared_ptr<eval::Descriptor> descriptor,
                                 std::shared_ptr<models::ClassifierImpl> classifier, const ProgressCallback& progress) {
  check(!models.empty(), "evaluation: no model to evaluate");
  const auto started = std::chrono::steady_clock::now();
  const auto dir = bench_model_dir();
  if (!descriptor) descriptor = eval::load_descriptor(dir / "descriptor.safetensors");
  if (!classifier) {
    classifier = models::ClassifierImpl::load(dir / "classifier.safetensors");
    classifier->eval();
  }
  FashionBench fashion = build_fashion_bench();
  eval::Evaluator evaluator(config, bench_eval_data(fashion, config.retain_probes, config.sampling.seed), descriptor,
                            classifier);
  std::vector<std::unique_ptr<eval::ModelEvaluation>> results;
  nlohmann::json files;
  const eval::ModelEvaluation* baseline = nullptr;
  const eval::ModelEvaluation* reference = nullptr;
  for (const NamedModel& entry : models) {
    files[entry.name] = {{"path", entry.model->source_path}, {"sha256", entry.model->source_sha256}};
    results.push_back(std::make_unique<eval::ModelEvaluation>(evaluator.evaluate(*entry.model, entry.name, progress)));
    if (entry.name == "baseline") baseline = results.back().get();
    if (entry.name == "reference") reference = results.back().get();
  }
  for (auto& result : results)
    if (result.get() != baseline && result.get() != reference) evaluator.compare(*result, baseline, reference);
  if (baseline && reference) {  // by definition of P1
    const_cast<eval::ModelEvaluation*>(baseline)->metrics["normalized_sscd"] = 1.0;
    const_cast<eval::ModelEvaluation*>(reference)->metrics["normalized_sscd"] = 0.0;
  }
  std::vector<const eval::ModelEvaluation*> views;
  for (auto& result : results) views.push_back(result.get());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return eval::write_report(out, evaluator, views, seconds, {{"model_files", files}});
}

}  // namespace lethe::bench
