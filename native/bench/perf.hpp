// `lethe perf`: the native side of `make bench` (bench/run_bench.py runs the Python
// reference and joins both). Measures, in one process: the machine's matmul and conv
// GFLOP/s (libtorch), one SISS training step of a UNet (median of timed steps after
// warm-up, the time between consecutive step reports of the real trainer), batch/size
// scaling of that step, 25-step DDIM sampling throughput and copy-descriptor throughput.
// On a GPU (`device`), the UNet runs there (the trainer's and sampler's data stay on the CPU and
// cross per forward, as with a host model); with `sd15_lora`, also one SISS LoRA step of an
// SD1.5-sized UNet (random weights, bf16) at 512x512 pixels (64x64 latents): seconds and peak
// GPU memory. With `paired` ("step", "sampling" or "descriptor"), only that measurement, in bursts that
// take turns with the Python reference's (make bench's paired bursts; see PerfOptions::paired).
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace lethe::bench {

struct PerfOptions {
  std::filesystem::path unet;             // UNet .safetensors (LDM keys); written by the Python harness
  std::filesystem::path descriptor;       // copy descriptor .safetensors (empty: a random bench-shaped one)
  std::filesystem::path out;              // folder: perf.json and scaling.png
  int64_t context_length = 8, context_dim = 64;
  int64_t image_size = 28, channels = 1;
  int64_t train_batch = 32;
  int64_t warmup_steps = 3, timed_steps = 20;
  int64_t profile_steps = 3;              // steps run under the op profiler (0: no profile)
  int64_t sample_batch = 64, sample_steps = 25;
  int64_t score_batch = 64, score_batches = 10;
  std::vector<int64_t> scaling_batches = {8, 16, 32, 64};
  std::vector<int64_t> scaling_sizes = {32, 64};
  int64_t scaling_steps = 8;              // timed steps per scaling point (after warm-up)
  int64_t ceiling_size = 1024;            // square matmul size
  int64_t ceiling_batch = 64;             // batch of the conv ceiling's 3x3 convolutions
  std::vector<std::string> precisions = {"fp32", "bf16"};  // each measured side by side
  std::string device = "cpu";             // where the UNet runs: cpu or cuda[:index]
  bool sd15_lora = false;                 // also the SD1.5-sized LoRA step (a GPU's job)
  int64_t sd15_batch = 1;                 // its batch (retain and forget examples each)
  // Paired bursts: "step", "sampling" or "descriptor" (empty: the full measurement). After its
  // warm-up the process calls say({"ready": ...}) and await_turn(); then, `bursts` times, it runs
  // one burst (`burst_steps` training steps, one sampling pass, or `score_batches` descriptor
  // batches), calls say({"seconds": ...}) and await_turn(). The harness answers each say by
  // running the other sides' bursts before handing the turn back, so all sides are timed in the
  // same minutes. A step burst's line also carries the conv ceiling in the step's precision,
  // measured right after the burst in its own turn ("conv_ceiling_gflops"): the step's share of
  // the ceiling from two numbers of the same minute. After the last burst the process waits too,
  // and ends (saving, exiting) only when the harness lets it: never while the other side is being
  // timed. await_turn() returns false when the harness has closed the channel (an error before
  // the last burst).
  std::string paired;
  int64_t bursts = 8, burst_steps = 5;
  std::function<void(const nlohmann::json&)> say;
  std::function<bool()> await_turn;
};

// Runs everything and writes out/perf.json (returned).
nlohmann::json run_perf(const PerfOptions& options);

}  // namespace lethe::bench
