// `lethe eval`: evaluate a model (and optionally the model before unlearning and a
// retrained reference) on the embedded bench; writes report.json and report.png.
#include <iostream>
#include <memory>

#include "bench/bench_evaluation.hpp"
#include "cli/commands.hpp"
#include "cli/progress_bar.hpp"
#include "core/error.hpp"
#include "eval/report.hpp"

namespace lethe::cli {

void add_eval_command(CLI::App& app) {
  auto* command = app.add_subcommand("eval", "Evaluate a model on the embedded bench: memorization (SSCD), normalized "
                                             "SSCD, FID/KID, class accuracy, probes and losses; writes report.json/png");
  auto options = std::make_shared<bench::EvalRequest>();
  command->add_option("--model", options->model, "the model to evaluate (.safetensors)")->required();
  command->add_option("--baseline", options->baseline, "the model before unlearning");
  command->add_option("--reference", options->reference, "the retrained model (gold standard)");
  command->add_option("--out", options->out, "output folder (default out/eval-<timestamp>)");
  command->add_option("--descriptor", options->descriptor, "copy descriptor (default models/bench/descriptor.safetensors; "
                                                           "an official SSCD TorchScript file works too)");
  command->add_option("--classifier", options->classifier, "classifier (default models/bench/classifier.safetensors)");
  command->add_option("--config", options->config_file, "evaluation settings JSON (keys of EvalConfig)");
  command->add_option("--seed", options->seed, "sampling seed")->capture_default_str();
  auto* per_caption =
      command->add_option("--samples-per-caption", options->samples_per_caption, "generations per forget caption");
  auto* per_class = command->add_option("--samples-per-class", options->samples_per_class, "generations per class prompt");
  command->add_option("--erased-concept", options->erased_concept,
                      "the class a concept-erasure run erased (the attacks then try to bring it back; the summary "
                      "reports its share)");
  command->add_flag("--no-attacks", options->no_attacks,
                    "skip the attacks (adversarial prompt search, relearning) that try to bring the forgotten content back");
  command->add_option("--precision", options->precision,
                      "compute precision of the models while sampling and attacking: auto, fp32, bf16 or fp16 (default: the "
                      "settings' precision)");
  set_action(command, [options, per_caption, per_class]() {
    // The request reads -1 as "not given" (the settings' count): a -1 typed here is a count like any other.
    for (const auto& [option, count] : {std::pair{per_caption, options->samples_per_caption},
                                        std::pair{per_class, options->samples_per_class}})
      check(option->count() == 0 || count >= 1, "lethe eval: ", option->get_name(), ": expected at least 1 sample, got ",
            count);
    const bench::EvalOutcome outcome = bench::run_eval_request(*options, terminal_progress("eval"));
    std::cout << "report: " << (outcome.out / "report.json").string() << "\npicture: " << (outcome.out / "report.png").string()
              << "\n";
    std::cout << eval::report_summary(outcome.report, outcome.config.erased_concept);
    return 0;
  });
}

}  // namespace lethe::cli
