// `lethe bench ...`: build, train and check the embedded Fashion-MNIST artist bench.
#include <iostream>
#include <memory>

#include "bench/auxiliary_training.hpp"
#include "bench/bench_check.hpp"
#include "bench/bench_training.hpp"
#include "cli/commands.hpp"
#include "cli/progress_bar.hpp"
#include "io/json_config.hpp"

namespace lethe::cli {

void add_bench_commands(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "The embedded Fashion-MNIST artist bench: train and check its models");

  auto* diffusion = bench->add_subcommand("train-diffusion", "Train the bench diffusion model (base or retrained)");
  auto config = std::make_shared<bench::DiffusionTrainingConfig>();
  auto out = std::make_shared<std::string>();
  diffusion->add_option("--variant", config->variant, "base (with the forget set) or retrained (without)")
      ->check(CLI::IsMember({"base", "retrained"}));
  diffusion->add_option("--out", *out, "output .safetensors (a .card.json is written beside it)")->required();
  diffusion->add_option("--steps", config->steps, "optimizer steps")->capture_default_str();
  diffusion->add_option("--batch-size", config->batch_size, "batch size")->capture_default_str();
  diffusion->add_option("--learning-rate", config->learning_rate, "peak learning rate")->capture_default_str();
  diffusion->add_option("--seed", config->seed, "seed (initialisation, batches, noise)")->capture_default_str();
  diffusion->add_option("--forget-repeats", config->bench.forget_repeats, "copies of each artist image")
      ->capture_default_str();
  set_action(diffusion, [config, out]() {
    auto card = bench::train_bench_diffusion(*config, *out, terminal_progress("train " + config->variant));
    card.erase("loss_curve");
    std::cout << card.dump(2) << "\n";
    return 0;
  });

  auto* descriptor = bench->add_subcommand("train-descriptor", "Train the bench's SSCD-style copy descriptor");
  auto descriptor_config = std::make_shared<bench::DescriptorTrainingConfig>();
  auto descriptor_out = std::make_shared<std::string>();
  descriptor->add_option("--out", *descriptor_out, "output .safetensors")->required();
  descriptor->add_option("--steps", descriptor_config->steps, "optimizer steps")->capture_default_str();
  descriptor->add_option("--seed", descriptor_config->seed, "seed")->capture_default_str();
  descriptor->add_option("--batch-size", descriptor_config->batch_size, "images per step (two views each)")
      ->capture_default_str();
  descriptor->add_option("--widths", descriptor_config->widths, "trunk widths, one stage each (e.g. 16,32,128)")
      ->delimiter(',')
      ->capture_default_str();
  descriptor->add_option("--embedding-dim", descriptor_config->embedding_dim, "descriptor dimension")
      ->capture_default_str();
  set_action(descriptor, [descriptor_config, descriptor_out]() {
    auto card = bench::train_bench_descriptor(*descriptor_config, *descriptor_out, terminal_progress("train descriptor"));
    card.erase("validation_scores");
    std::cout << card.dump(2) << "\n";
    return 0;
  });

  auto* classifier = bench->add_subcommand("train-classifier", "Train the bench's classifier (FID features, accuracy)");
  auto classifier_config = std::make_shared<bench::ClassifierTrainingConfig>();
  auto classifier_out = std::make_shared<std::string>();
  classifier->add_option("--out", *classifier_out, "output .safetensors")->required();
  classifier->add_option("--steps", classifier_config->steps, "optimizer steps")->capture_default_str();
  classifier->add_option("--seed", classifier_config->seed, "seed")->capture_default_str();
  set_action(classifier, [classifier_config, classifier_out]() {
    auto card = bench::train_bench_classifier(*classifier_config, *classifier_out, terminal_progress("train classifier"));
    std::cout << card.dump(2) << "\n";
    return 0;
  });

  auto* checker = bench->add_subcommand(
      "check", "Measure the bench models against the bench targets (memorization, quality, descriptor, classifier)");
  auto check_options = std::make_shared<bench::BenchCheckOptions>();
  auto check_out = std::make_shared<std::string>("models/bench");
  auto models_dir = std::make_shared<std::string>();
  checker->add_flag("--quick", check_options->quick, "hashes + a small sample of each property (under a minute)");
  checker->add_option("--out", *check_out, "folder for report.json and its pictures")->capture_default_str();
  checker->add_option("--models", *models_dir, "folder holding the four models (default: the shipped models/bench)");
  checker->add_option("--samples-per-caption", check_options->samples_per_caption, "generations per forget caption")
      ->capture_default_str();
  checker->add_option("--samples-per-class", check_options->samples_per_class, "generations per class prompt")
      ->capture_default_str();
  set_action(checker, [check_options, check_out, models_dir]() {
    check_options->out = *check_out;
    check_options->models = *models_dir;
    auto report = bench::check_bench(*check_options, terminal_progress("bench check"));
    report.erase("metrics");
    std::cout << report.dump(2) << "\n";
    std::cout << "report: " << (check_options->out / "report.json").string() << (report["pass"].get<bool>() ? "  (all targets met)" : "  (TARGETS MISSED)") << "\n";
    return report["pass"].get<bool>() ? 0 : 1;
  });
}

}  // namespace lethe::cli
