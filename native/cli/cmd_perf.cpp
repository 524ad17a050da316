// `lethe perf`: native performance measurements for `make bench` (bench/run_bench.py).
#include <iostream>
#include <memory>
#include <string>

#include "bench/perf.hpp"
#include "cli/commands.hpp"

namespace lethe::cli {

void add_perf_command(CLI::App& app) {
  auto* perf = app.add_subcommand("perf", "Measure native speed (training step, sampling, scoring, scaling, ceilings); "
                                          "used by `make bench`");
  auto options = std::make_shared<bench::PerfOptions>();
  auto unet = std::make_shared<std::string>();
  auto descriptor = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto tiny = std::make_shared<bool>(false);
  perf->add_option("--unet", *unet, "UNet .safetensors (LDM keys)")->required()->check(CLI::ExistingFile);
  perf->add_option("--descriptor", *descriptor, "copy descriptor .safetensors (default: a random bench-shaped one)");
  perf->add_option("--out", *out, "folder for perf.json and scaling.png")->required();
  perf->add_option("--batch", options->train_batch, "training-step batch")->capture_default_str();
  perf->add_option("--timed-steps", options->timed_steps, "timed training steps (after warm-up)")->capture_default_str();
  perf->add_option("--profile-steps", options->profile_steps, "training steps run under the op profiler (0: none)")
      ->capture_default_str();
  perf->add_option("--precisions", options->precisions, "precisions measured side by side")->capture_default_str();
  perf->add_option("--device", options->device, "where the UNet runs: cpu or cuda[:index]")->capture_default_str();
  perf->add_option("--ceiling-size", options->ceiling_size, "square matmul size of the ceiling")->capture_default_str();
  perf->add_flag("--sd15-lora", options->sd15_lora,
                 "also an SD1.5-sized UNet's SISS LoRA step at 512x512 (random bf16 weights; for a GPU)");
  perf->add_option("--sd15-batch", options->sd15_batch, "that step's batch")->capture_default_str();
  perf->add_option("--paired", options->paired,
                   "step, sampling or descriptor: only that, in bursts that take turns with make bench's Python reference "
                   "(a JSON line on stdout after the warm-up and after each burst; each next burst waits for a line on stdin)");
  perf->add_option("--bursts", options->bursts, "bursts of --paired")->capture_default_str();
  perf->add_option("--burst-steps", options->burst_steps, "training steps per burst of --paired step")
      ->capture_default_str();
  perf->add_flag("--tiny", *tiny, "tiny sizes (the smoke test): nothing is meaningful but every path runs");
  set_action(perf, [options, unet, descriptor, out, tiny]() {
    options->unet = *unet;
    options->descriptor = *descriptor;
    options->out = *out;
    if (*tiny) {
      options->train_batch = 2;
      options->image_size = 16;
      options->warmup_steps = 1;
      options->timed_steps = 2;
      options->profile_steps = 1;
      options->sample_batch = 2;
      options->sample_steps = 2;
      options->score_batch = 2;
      options->score_batches = 1;
      options->scaling_batches = {1, 2};
      options->scaling_sizes = {16};
      options->scaling_steps = 1;
      options->ceiling_size = 64;
      options->ceiling_batch = 4;  // bf16 convolutions run at a few GFLOP/s where the CPU has no bf16 instructions
    }
    options->say = [](const nlohmann::json& line) { std::cout << line.dump() << std::endl; };
    options->await_turn = [] {
      std::string line;
      return static_cast<bool>(std::getline(std::cin, line));
    };
    std::cout << bench::run_perf(*options).dump(2) << "\n";
    return 0;
  });
}

}  // namespace lethe::cli
