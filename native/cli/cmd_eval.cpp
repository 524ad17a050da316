// `lethe eval`: evaluate a model (and optionally the model before unlearning and a
// retrained reference) on the embedded bench; writes report.json and report.png.
#include <chrono>
#include <iostream>
#include <memory>

#include "bench/bench_evaluation.hpp"
#include "cli/commands.hpp"
#include "cli/progress_bar.hpp"
#include "core/error.hpp"
#include "core/runtime.hpp"
#include "eval/report.hpp"

namespace lethe::cli {

namespace {

struct EvalOptions {
  std::string model, baseline, reference, out, descriptor, classifier, config_file;
  int64_t seed = 0;
  int64_t samples_per_caption = -1;
  int64_t samples_per_class = -1;
};

}  // namespace

nlohmann::json run_bench_evaluation(const std::string& model, const std::string& baseline, const std::string& reference,
                                    const std::filesystem::path& out, const eval::EvalConfig& config,
                                    const std::string& descriptor_path, const std::string& classifier_path) {
  const auto started = std::chrono::steady_clock::now();
  const auto dir = bench::bench_model_dir();
  auto descriptor = eval::load_descriptor(descriptor_path.empty() ? dir / "descriptor.safetensors" : std::filesystem::path(descriptor_path));
  auto classifier = models::ClassifierImpl::load(classifier_path.empty() ? dir / "classifier.safetensors" : std::filesystem::path(classifier_path));
  classifier->eval();
  bench::FashionBench fashion = bench::build_fashion_bench();
  eval::Evaluator evaluator(config, bench::bench_eval_data(fashion, config.retain_probes, config.sampling.seed), descriptor,
                            classifier);
  std::vector<std::unique_ptr<eval::ModelEvaluation>> results;
  std::vector<std::pair<std::string, std::string>> entries = {{"evaluated", model}};
  if (!baseline.empty()) entries.emplace_back("baseline", baseline);
  if (!reference.empty()) entries.emplace_back("reference", reference);
  nlohmann::json files;
  for (const auto& [name, path] : entries) {
    auto loaded = models::DiffusionModel::load(path);
    files[name] = {{"path", path}, {"sha256", loaded->source_sha256}};
    results.push_back(std::make_unique<eval::ModelEvaluation>(
        evaluator.evaluate(*loaded, name, terminal_progress("eval " + name))));
  }
  const eval::ModelEvaluation* base = baseline.empty() ? nullptr : results[1].get();
  const eval::ModelEvaluation* ref = reference.empty() ? nullptr : results.back().get();
  for (auto& result : results) {
    if (result.get() != base && result.get() != ref) evaluator.compare(*result, base, ref);
  }
  if (base && ref) {  // by definition
    results[1]->metrics["normalized_sscd"] = 1.0;
    results.back()->metrics["normalized_sscd"] = 0.0;
  }
  std::vector<const eval::ModelEvaluation*> views;
  for (auto& result : results) views.push_back(result.get());
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return eval::write_report(out, evaluator, views, seconds, {{"model_files", files}});
}

void add_eval_command(CLI::App& app) {
  auto* command = app.add_subcommand("eval", "Evaluate a model on the embedded bench: memorization (SSCD), normalized "
                                             "SSCD, FID/KID, class accuracy, probes and losses; writes report.json/png");
  auto options = std::make_shared<EvalOptions>();
  command->add_option("--model", options->model, "the model to evaluate (.safetensors)")->required();
  command->add_option("--baseline", options->baseline, "the model before unlearning");
  command->add_option("--reference", options->reference, "the retrained model (gold standard)");
  command->add_option("--out", options->out, "output folder (default out/eval-<timestamp>)");
  command->add_option("--descriptor", options->descriptor, "copy descriptor (default models/bench/descriptor.safetensors; "
                                                           "an official SSCD TorchScript file works too)");
  command->add_option("--classifier", options->classifier, "classifier (default models/bench/classifier.safetensors)");
  command->add_option("--config", options->config_file, "evaluation settings JSON (keys of EvalConfig)");
  command->add_option("--seed", options->seed, "sampling seed")->capture_default_str();
  command->add_option("--samples-per-caption", options->samples_per_caption, "generations per forget caption");
  command->add_option("--samples-per-class", options->samples_per_class, "generations per class prompt");
  set_action(command, [options]() {
    eval::EvalConfig config = bench::bench_eval_config();
    if (!options->config_file.empty())
      config = io::merge_config(config, io::read_json_file(options->config_file), options->config_file);
    config.sampling.seed = static_cast<uint64_t>(options->seed);
    if (options->samples_per_caption > 0) config.samples_per_forget_caption = options->samples_per_caption;
    if (options->samples_per_class > 0) config.samples_per_class = options->samples_per_class;
    const std::filesystem::path out = options->out.empty() ? std::filesystem::path("out") / ("eval-" + timestamp())
                                                           : std::filesystem::path(options->out);
    auto report = run_bench_evaluation(options->model, options->baseline, options->reference, out, config,
                                       options->descriptor, options->classifier);
    std::cout << "report: " << (out / "report.json").string() << "\npicture: " << (out / "report.png").string() << "\n";
    for (const auto& [name, metrics] : report["models"].items())
      std::cout << name << ": memorization_rate " << metrics["memorization_rate"] << ", fid " << metrics["fid"]
                << ", class_accuracy " << metrics["class_accuracy"] << "\n";
    return 0;
  });
}

}  // namespace lethe::cli
