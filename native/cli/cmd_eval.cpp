// `lethe eval`: evaluate a model (and optionally the model before unlearning and a
// retrained reference) on the embedded bench; writes report.json and report.png.
#include <chrono>
#include <iostream>
#include <memory>

#include "bench/bench_evaluation.hpp"
#include "cli/commands.hpp"
#include "io/output_path.hpp"
#include "cli/progress_bar.hpp"
#include "core/error.hpp"
#include "core/runtime.hpp"
#include "eval/report.hpp"

namespace lethe::cli {

namespace {

struct EvalOptions {
  std::string model, baseline, reference, out, descriptor, classifier, config_file, erased_concept, precision;
  bool no_attacks = false;
  int64_t seed = 0;
  int64_t samples_per_caption = -1;
  int64_t samples_per_class = -1;
};

}  // namespace

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
  command->add_option("--erased-concept", options->erased_concept,
                      "the class a concept-erasure run erased (the attacks then try to bring it back; the summary "
                      "reports its share)");
  command->add_flag("--no-attacks", options->no_attacks,
                    "skip the attacks (adversarial prompt search, relearning) that try to bring the forgotten content back");
  command->add_option("--precision", options->precision,
                      "compute precision of the models while sampling and attacking: auto, fp32 or bf16 (default: the "
                      "settings' precision)");
  set_action(command, [options]() {
    eval::EvalConfig config = bench::bench_eval_config();
    if (!options->config_file.empty())
      config = io::merge_config(config, io::read_json_file(options->config_file), options->config_file);
    config.sampling.seed = static_cast<uint64_t>(options->seed);
    if (options->samples_per_caption > 0) config.samples_per_forget_caption = options->samples_per_caption;
    if (options->samples_per_class > 0) config.samples_per_class = options->samples_per_class;
    if (!options->erased_concept.empty()) config.erased_concept = options->erased_concept;
    if (options->no_attacks) config.attacks.enabled = false;
    if (!options->precision.empty()) config.precision = options->precision;
    const std::filesystem::path out =
        options->out.empty() ? io::claim_numbered_folder("out", "eval-" + timestamp()) : std::filesystem::path(options->out);
    check(!std::filesystem::exists(out / "report.json"), "lethe eval: '", out.string(),
          "' already holds a report; choose another --out (nothing is overwritten)");
    std::vector<bench::NamedModel> entries = {{"evaluated", models::DiffusionModel::load(options->model)}};
    if (!options->baseline.empty()) entries.push_back({"baseline", models::DiffusionModel::load(options->baseline)});
    if (!options->reference.empty()) entries.push_back({"reference", models::DiffusionModel::load(options->reference)});
    std::shared_ptr<eval::Descriptor> descriptor;
    if (!options->descriptor.empty()) descriptor = eval::load_descriptor(options->descriptor);
    std::shared_ptr<models::ClassifierImpl> classifier;
    if (!options->classifier.empty()) {
      classifier = models::ClassifierImpl::load(options->classifier);
      classifier->eval();
    }
    auto report = bench::evaluate_on_bench(entries, out, config, descriptor, classifier, terminal_progress("eval"));
    std::cout << "report: " << (out / "report.json").string() << "\npicture: " << (out / "report.png").string() << "\n";
    std::cout << eval::report_summary(report, config.erased_concept);
    return 0;
  });
}

}  // namespace lethe::cli
