#include "bench/perf.hpp"

#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/DeviceAccelerator.h>
#include <ATen/Parallel.h>
#include <torch/version.h>

#include "bench/auxiliary_training.hpp"
#include "bench/fashion_bench.hpp"
#include "bench/op_profile.hpp"
#include "core/error.hpp"
#include "core/precision.hpp"
#include "core/runtime.hpp"
#include "diffusion/sampling.hpp"
#include "draw/canvas.hpp"
#include "eval/descriptor.hpp"
#include "io/atomic_file.hpp"
#include "io/json_config.hpp"
#include "models/copy_descriptor.hpp"
#include "models/diffusion_model.hpp"
#include "unlearn/run.hpp"

namespace lethe::bench {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

double median(std::vector<double> values) {
  check(!values.empty(), "perf: no timings");
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// Waits for the work queued on `device` (a GPU runs kernels asynchronously; a CPU is done).
void synchronize(const c10::Device& device) {
  if (!device.is_cpu()) at::accelerator::synchronizeDevice(device.index() < 0 ? 0 : device.index());
}

// Seconds of each of `count` calls of `work` on `device`.
template <typename F>
std::vector<double> timed_calls(F&& work, int64_t count, const c10::Device& device = c10::kCPU) {
  std::vector<double> times;
  for (int64_t i = 0; i < count; ++i) {
    const auto start = Clock::now();
    work();
    synchronize(device);
    times.push_back(seconds_since(start));
  }
  return times;
}

// Median seconds of `repeats` calls of `work` on `device` after two warm-up calls.
template <typename F>
double time_median(F&& work, int repeats, const c10::Device& device = c10::kCPU) {
  work();
  work();
  synchronize(device);
  return median(timed_calls(work, repeats, device));
}

json machine_facts_json() {
  const MachineFacts facts = machine_facts();
  return {{"cpu", facts.cpu}, {"cores", facts.cores}, {"threads", facts.threads},
          {"flush_denormals", facts.flush_denormals},
          {"freed_memory_kept", facts.freed_memory_kept}, {"torch", TORCH_VERSION}, {"lethe", version()}};
}

// Convolution GFLOP/s in `dtype`: a 3x3 convolution at each level shape of the bench UNet
// ({"convs": per shape, "conv_gflops": the fastest, "conv_batch": `batch`}).
json conv_ceilings(int64_t batch, at::ScalarType dtype, const c10::Device& device) {
  c10::InferenceMode inference;
  const auto options = at::TensorOptions().dtype(dtype).device(device);
  // batch x channels x channels, 3x3, padding 1, at the bench UNet's level sizes (28 and 14 pixels).
  json convs = json::array();
  double best = 0.0;
  for (const auto& [channels, size] : std::vector<std::pair<int64_t, int64_t>>{{32, 28}, {64, 14}}) {
    at::Tensor x = at::randn({batch, channels, size, size}).to(options);
    at::Tensor w = at::randn({channels, channels, 3, 3}).to(options);
    const double seconds = time_median([&] { at::conv2d(x, w, {}, 1, 1); }, 10, device);
    const double gflops = 2.0 * batch * channels * channels * size * size * 9 / seconds / 1e9;
    convs.push_back({{"shape", str("x [", batch, ", ", channels, ", ", size, ", ", size, "] * w [", channels, ", ",
                                   channels, ", 3, 3], padding 1")},
                     {"gflops", gflops}});
    best = std::max(best, gflops);
  }
  return {{"convs", convs}, {"conv_gflops", best}, {"conv_batch", batch}};  // the ceiling: the fastest shape
}

// Matmul and convolution GFLOP/s in `dtype` (what autocast runs the UNet's convolutions and
// linears in): a square matmul and conv_ceilings().
json ceilings(const PerfOptions& options, at::ScalarType dtype, const c10::Device& device) {
  c10::InferenceMode inference;
  const int64_t n = options.ceiling_size;
  const auto tensor_options = at::TensorOptions().dtype(dtype).device(device);
  at::Tensor a = at::randn({n, n}).to(tensor_options), b = at::randn({n, n}).to(tensor_options);
  const double matmul = time_median([&] { at::mm(a, b); }, 10, device);
  json out = {{"matmul_size", n}, {"matmul_gflops", 2.0 * n * n * n / matmul / 1e9}};
  out.update(conv_ceilings(options.ceiling_batch, dtype, device));
  return out;
}

// Two measurements of ceilings() merged: the higher GFLOP/s of each shape and of the matmul.
json faster_ceiling(const json& a, const json& b) {
  json out = a;
  out["matmul_gflops"] = std::max(a["matmul_gflops"].get<double>(), b["matmul_gflops"].get<double>());
  double best = 0.0;
  for (size_t i = 0; i < a["convs"].size(); ++i) {
    const double gflops = std::max(a["convs"][i]["gflops"].get<double>(), b["convs"][i]["gflops"].get<double>());
    out["convs"][i]["gflops"] = gflops;
    best = std::max(best, gflops);
  }
  out["conv_gflops"] = best;
  out["measured"] = "twice (before and after this precision's step and sampling), the faster kept";
  return out;
}

// Synthetic SISS data of the given size: distinct random contexts per example, so the two
// SISS forwards (retain and forget condition) both run, as in the Python reference.
unlearn::TaskData synthetic_data(int64_t count, int64_t channels, int64_t size, int64_t length, int64_t dim, uint64_t seed) {
  at::Generator g = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto make = [&](const std::string& name) {
    unlearn::ExampleSet set;
    set.name = name;
    set.images = at::rand({count, channels, size, size}, g) * 2.0 - 1.0;
    set.masks = unlearn::full_masks(count, size, size);
    set.conditioning = at::randn({count, length, dim}, g);
    return set;
  };
  unlearn::TaskData data;
  data.forget = make("forget set");
  data.retain = make("retain set");
  return data;
}

// Median seconds per SISS step (default objective settings, full parameters, AdamW) on
// `model`: the trainer's own loop, timed between consecutive step reports. With `ops`, the
// timed steps run under the op profiler instead and their self times land there.
// `after_step(step, seconds)`, when given, is called after each timed step with its time, before
// the next step's clock starts.
double siss_step_seconds(const std::shared_ptr<models::DiffusionModel>& model, int64_t batch, int64_t size,
                         const PerfOptions& options, Precision precision, const fs::path& scratch,
                         std::vector<OpTime>* ops = nullptr,
                         const std::function<void(int64_t, double)>& after_step = {}) {
  unlearn::TaskData data = synthetic_data(std::max<int64_t>(batch * 2, 16), options.channels, size,
                                          options.context_length, options.context_dim, 7);
  unlearn::RunConfig config;
  config.objective = "siss";
  config.trainer.batch_size = batch;
  config.trainer.retain_caption_dropout = 0.0;  // synthetic sets carry contexts, not captions
  config.trainer.steps = options.warmup_steps + options.timed_steps;
  config.precision = precision_name(precision);
  config.output = (scratch / ("siss-" + config.precision + "-b" + std::to_string(batch) + "-s" + std::to_string(size))).string();
  std::error_code ignored;
  fs::remove_all(config.output, ignored);
  std::vector<double> times;
  auto last = Clock::now();
  int64_t seen = 0;
  OpProfiler profiler;
  auto progress = [&](const ProgressEvent& event) {
    if (event.stage.find("train") == std::string::npos && event.stage.find("unlearn") == std::string::npos) return;
    const auto now = Clock::now();
    if (event.step > seen) {
      if (event.step > options.warmup_steps) times.push_back(std::chrono::duration<double>(now - last).count());
      seen = event.step;
      if (after_step) after_step(seen, seen > options.warmup_steps ? times.back() : 0.0);
      if (ops && seen == options.warmup_steps) profiler.start();
      if (ops && seen == options.warmup_steps + options.timed_steps && profiler.running()) *ops = profiler.stop();
    }
    last = Clock::now();
  };
  unlearn::run_unlearning(config, progress, model, &data);
  fs::remove_all(config.output, ignored);
  check(static_cast<int64_t>(times.size()) >= 1, "perf: the trainer reported no timed steps");
  return median(times);
}

// The 15 largest ops by self time, per run of the profiled work.
json profile_table(const std::vector<OpTime>& ops, int64_t runs) {
  double total = 0;
  for (const auto& op : ops) total += op.self_seconds;
  json table = json::array();
  const double per = static_cast<double>(runs);
  for (size_t i = 0; i < ops.size() && i < 15; ++i) {
    table.push_back({{"op", ops[i].name}, {"self_seconds_per_step", ops[i].self_seconds / per},
                     {"calls_per_step", static_cast<double>(ops[i].calls) / per},
                     {"share", total > 0 ? ops[i].self_seconds / total : 0.0}});
  }
  return {{"steps", runs}, {"op_seconds_per_step", total / per}, {"ops", table}};
}

// The scoring the bench times: the copy descriptor (options.descriptor, or a random one of the
// bench's shape) embedding a batch of random images. Under inference mode, as scoring runs
// (eval::embed_batched) and as the Python reference times it: with autograd on, every batch
// would record a graph nobody back-propagates.
class ScoringWork {
 public:
  ScoringWork(const PerfOptions& options, const fs::path& scratch)
      : name_(options.descriptor.empty() ? "random bench-shaped" : options.descriptor.string()) {
    if (!options.descriptor.empty()) {
      descriptor_ = eval::load_descriptor(options.descriptor);
    } else {
      const DescriptorTrainingConfig defaults;  // the shape the bench's descriptor is trained with
      models::CopyDescriptorConfig config;
      config.trunk.widths = defaults.widths;
      config.embedding_dim = defaults.embedding_dim;
      auto module = std::make_shared<models::CopyDescriptorImpl>(config);
      module->initialize(0);
      const fs::path file = scratch / "descriptor.safetensors";
      fs::create_directories(scratch);
      module->save(file);
      descriptor_ = eval::load_descriptor(file);
    }
    images_ = at::rand({options.score_batch, options.channels, options.image_size, options.image_size});
  }
  void embed() const { descriptor_->embed(images_); }  // call under inference mode
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  std::shared_ptr<eval::Descriptor> descriptor_;
  at::Tensor images_;
};

// The sampling the bench times: DDIM with guidance 3 over random contexts, the unconditional
// rows' context zeros (as the reference's).
class BenchSampling {
 public:
  explicit BenchSampling(const PerfOptions& options)
      : shape_{options.channels, options.image_size, options.image_size} {
    at::Generator g = at::make_generator<at::CPUGeneratorImpl>(3);
    context_ = at::randn({options.sample_batch, options.context_length, options.context_dim}, g);
    uncond_ = at::zeros({1, options.context_length, options.context_dim});
    sampling_.steps = options.sample_steps;
    sampling_.guidance = 3.0;
    sampling_.batch_size = options.sample_batch;
  }
  // Seconds to sample the first `images` contexts' images.
  double seconds(models::DiffusionModel& model, int64_t images) const {
    const auto start = Clock::now();
    diffusion::sample(model, model.schedule(), context_.narrow(0, 0, images), uncond_, shape_, sampling_);
    return seconds_since(start);
  }

 private:
  std::vector<int64_t> shape_;
  at::Tensor context_, uncond_;
  diffusion::SamplingOptions sampling_;
};

// One precision's training step (with its op profile) and sampling throughput.
json precision_perf(const std::shared_ptr<models::DiffusionModel>& model, const PerfOptions& options,
                    Precision precision, const fs::path& scratch) {
  json out;
  const double step = siss_step_seconds(model, options.train_batch, options.image_size, options, precision, scratch);
  out["train_step"] = {{"objective", "siss"}, {"batch", options.train_batch}, {"image_size", options.image_size},
                       {"timed_steps", options.timed_steps}, {"warmup_steps", options.warmup_steps},
                       {"median_seconds", step}};

  // Where that step's time goes: the same step under libtorch's profiler (self time per op).
  if (options.profile_steps > 0) {
    PerfOptions profiled = options;
    profiled.warmup_steps = 2;
    profiled.timed_steps = options.profile_steps;
    std::vector<OpTime> ops;
    const double seconds =
        siss_step_seconds(model, options.train_batch, options.image_size, profiled, precision, scratch, &ops);
    out["train_step_profile"] = profile_table(ops, options.profile_steps);
    out["train_step_profile"]["median_seconds_profiled"] = seconds;
  }

  // Sampling: 25-step DDIM with guidance (two UNet passes per step), batch 64.
  const PrecisionScope scope(precision);
  const BenchSampling sampling(options);
  sampling.seconds(*model, 2);  // warm-up
  const double seconds = sampling.seconds(*model, options.sample_batch);
  out["sampling"] = {{"sampler", "ddim"}, {"steps", options.sample_steps}, {"guidance", 3.0},
                     {"batch", options.sample_batch}, {"seconds", seconds},
                     {"images_per_second", options.sample_batch / seconds}};
  if (options.profile_steps > 0) {  // the same sampling run once more, under the op profiler
    OpProfiler profiler;
    profiler.start();
    sampling.seconds(*model, options.sample_batch);
    out["sampling_profile"] = profile_table(profiler.stop(), 1);
  }
  return out;
}

// Paired bursts of one precision's training step or sampling, or of the copy descriptor (PerfOptions::paired).
json paired_bursts(const std::shared_ptr<models::DiffusionModel>& model, const PerfOptions& options,
                   Precision precision, const fs::path& scratch) {
  check(options.say && options.await_turn, "perf --paired: no channel to take turns on");
  check(options.warmup_steps >= 1, "perf --paired: expected at least 1 warm-up step, got ", options.warmup_steps);
  json bursts = json::array();
  // Waits for the harness after `done` bursts: the next burst's turn, or after the last, leave to end.
  auto next_turn = [&](int64_t done) {
    const bool more = options.await_turn();
    check(more || done == options.bursts, "perf --paired: standard input closed before the next burst's turn "
          "(expected a line per burst from make bench)");
  };
  auto warmed_up = [&] {
    options.say({{"ready", options.paired}, {"precision", precision_name(precision)}});
    next_turn(0);
  };
  auto burst_done = [&](const json& line) {
    bursts.push_back(line);
    options.say(line);
    next_turn(static_cast<int64_t>(bursts.size()));
  };
  if (options.paired == "step") {
    PerfOptions run = options;
    run.timed_steps = options.bursts * options.burst_steps;
    std::vector<double> burst;
    auto after_step = [&](int64_t step, double seconds) {
      if (step == run.warmup_steps) warmed_up();
      if (step <= run.warmup_steps) return;
      burst.push_back(seconds);
      if (static_cast<int64_t>(burst.size()) < options.burst_steps) return;
      // the ceiling in the same turn, after the burst's timing: the share's two numbers of one minute
      const json ceiling = conv_ceilings(options.ceiling_batch, compute_dtype(precision), model->device());
      burst_done({{"seconds", burst}, {"median_seconds", median(burst)}, {"conv_ceiling_gflops", ceiling["conv_gflops"]}});
      burst.clear();
    };
    siss_step_seconds(model, options.train_batch, options.image_size, run, precision, scratch, nullptr, after_step);
    check(static_cast<int64_t>(bursts.size()) == options.bursts, "perf --paired step: the trainer ran ",
          bursts.size(), " bursts, expected ", options.bursts);
  } else if (options.paired == "descriptor") {
    const ScoringWork scoring(options, scratch);
    c10::InferenceMode inference;
    scoring.embed();  // warm-up: two batches, as the reference's
    scoring.embed();
    warmed_up();
    for (int64_t i = 0; i < options.bursts; ++i) {
      const std::vector<double> seconds = timed_calls([&] { scoring.embed(); }, options.score_batches);
      burst_done({{"seconds", seconds}, {"median_seconds", median(seconds)},
                  {"images_per_second", options.score_batch / median(seconds)}});
    }
  } else {
    const PrecisionScope scope(precision);
    const BenchSampling sampling(options);
    sampling.seconds(*model, options.sample_batch);  // warm-up: one whole pass, as the reference's
    warmed_up();
    for (int64_t i = 0; i < options.bursts; ++i) {
      const double seconds = sampling.seconds(*model, options.sample_batch);
      burst_done({{"seconds", seconds}, {"images_per_second", options.sample_batch / seconds}});
    }
  }
  const bool step = options.paired == "step", scoring = options.paired == "descriptor";
  return {{"measurement", options.paired}, {"precision", scoring ? "fp32" : precision_name(precision)},
          {"batch", step ? options.train_batch : scoring ? options.score_batch : options.sample_batch},
          {"calls_per_burst", step ? options.burst_steps : scoring ? options.score_batches : 1}, {"bursts", bursts}};
}

// Bytes the device's caching allocator has handed out at most since the last reset.
int64_t peak_device_bytes(const c10::Device& device) {
  const auto stats = at::accelerator::getDeviceStats(device.index() < 0 ? 0 : device.index());
  return stats.allocated_bytes[static_cast<size_t>(c10::CachingDeviceAllocator::StatType::AGGREGATE)].peak;
}

// One SISS LoRA step of an SD1.5-sized UNet (UNetConfig::sd15(): 860 M parameters, random
// weights stored in bf16 on `device`) at 512x512 pixels (4x64x64 latents, 77x768 contexts), in
// bf16 mixed precision with the default LoRA (rank 4 on attention and feed-forward): median
// seconds per step and the device's peak allocated memory over the training steps (a GPU's;
// on a CPU it runs, slowly, without a memory figure).
json sd15_lora_step(const PerfOptions& options, const c10::Device& device, const fs::path& scratch) {
  models::UNet unet(models::UNetConfig::sd15(), at::TensorOptions(at::kFloat));
  unet->initialize(11);  // on the CPU (the generator's device), then stored in bf16 on the device
  unet->to(device, at::kBFloat16);
  int64_t parameters = 0;
  for (const auto& p : unet->parameters()) parameters += p.numel();
  auto model = std::make_shared<models::DiffusionModel>(std::move(unet), models::TokenEncoder{nullptr},
                                                        diffusion::ScheduleConfig{});
  const int64_t batch = options.sd15_batch;
  unlearn::TaskData data = synthetic_data(std::max<int64_t>(2 * batch, 4), 4, 64, 77, 768, 7);
  unlearn::RunConfig config;
  config.objective = "siss";
  config.trainable = "lora";
  config.trainer.batch_size = batch;
  config.trainer.retain_caption_dropout = 0.0;
  config.trainer.steps = options.warmup_steps + options.timed_steps;
  config.trainer.checkpoint_seconds = 0;  // a checkpoint only at the end
  config.precision = "bf16";
  config.output = (scratch / "sd15-lora").string();
  std::error_code ignored;
  fs::remove_all(config.output, ignored);
  synchronize(device);
  if (!device.is_cpu()) at::accelerator::resetPeakStats(device.index() < 0 ? 0 : device.index());
  std::vector<double> times;
  int64_t seen = 0, peak = 0;
  auto last = Clock::now();
  auto progress = [&](const ProgressEvent& event) {
    if (event.stage.find("train") == std::string::npos || event.step <= seen) return;
    const auto now = Clock::now();
    if (event.step > options.warmup_steps) times.push_back(std::chrono::duration<double>(now - last).count());
    seen = event.step;
    if (seen == config.trainer.steps && !device.is_cpu()) peak = peak_device_bytes(device);  // the steps', not the merge's
    last = Clock::now();
  };
  unlearn::run_unlearning(config, progress, model, &data);
  fs::remove_all(config.output, ignored);
  check(!times.empty(), "perf --sd15-lora: the trainer reported no timed steps");
  return {{"unet", "sd15 layout, random weights"}, {"unet_parameters", parameters}, {"weights", "bf16"},
          {"precision", "bf16"}, {"trainable", "lora"}, {"lora_rank", config.lora.rank},
          {"objective", "siss"}, {"batch", batch}, {"latent", {4, 64, 64}}, {"context", {77, 768}},
          {"timed_steps", static_cast<int64_t>(times.size())}, {"median_seconds", median(times)},
          {"peak_allocated_bytes", device.is_cpu() ? json(nullptr) : json(peak)}};
}

}  // namespace

json run_perf(const PerfOptions& options) {
  check(options.train_batch >= 1, "perf --batch: expected at least 1, got ", options.train_batch);
  check(options.timed_steps >= 1, "perf --timed-steps: expected at least 1, got ", options.timed_steps);
  check(options.profile_steps >= 0, "perf --profile-steps: expected 0 (no profile) or more, got ", options.profile_steps);
  check(options.ceiling_size >= 1, "perf --ceiling-size: expected at least 1, got ", options.ceiling_size);
  check(options.ceiling_batch >= 1, "perf: the conv ceiling's batch must be at least 1, got ", options.ceiling_batch);
  check(options.sd15_batch >= 1, "perf --sd15-batch: expected at least 1, got ", options.sd15_batch);
  for (const std::string& name : options.precisions)
    check(parse_precision(name, "perf --precisions") != Precision::automatic,
          "perf --precisions: measure fp32, bf16 or fp16, not auto");
  if (!options.paired.empty()) {
    check(options.paired == "step" || options.paired == "sampling" || options.paired == "descriptor",
          "perf --paired: expected step, sampling or descriptor, got '", options.paired, "'");
    check(options.bursts >= 1, "perf --bursts: expected at least 1, got ", options.bursts);
    check(options.burst_steps >= 1, "perf --burst-steps: expected at least 1, got ", options.burst_steps);
    check(options.precisions.size() == 1, "perf --paired: expected one precision in --precisions, got ",
          options.precisions.size());
  }
  io::make_folder(options.out, "perf --out");
  const fs::path scratch = options.out / "scratch";
  json out;
  out["machine"] = machine_facts_json();
  c10::Device device = c10::kCPU;
  bool parsed = true;
  try {
    device = c10::Device(options.device);
  } catch (const std::exception&) {
    parsed = false;
  }
  check(parsed && (device.is_cpu() || device.is_cuda()), "perf --device: expected cpu or cuda[:index], got '",
        options.device, "'");
  if (device.is_cuda()) {
    const int64_t gpus = at::hasCUDA() ? static_cast<int64_t>(at::getNumGPUs()) : 0;
    check(gpus > 0, "perf --device ", options.device, ": no CUDA GPU is usable here (none present, or a CPU build of torch)");
    check(device.index() < gpus, "perf --device ", options.device, ": expected a GPU index below ", gpus, ", got ",
          device.index());
  }
  check(options.paired != "descriptor" || device.is_cpu(),
        "perf --paired descriptor: the copy descriptor runs on the CPU, got --device ", options.device);
  out["device"] = device.str();
  const ResolvedPrecision automatic = resolve_precision(Precision::automatic, device);
  out["auto_precision"] = {{"precision", precision_name(automatic.precision)}, {"reason", automatic.reason}};
  PerfOptions run = options;
  // libtorch's CPU-side op profile says nothing of GPU kernels; paired bursts time, they do not profile
  if (!device.is_cpu() || !options.paired.empty()) run.profile_steps = 0;

  models::ModelLoadOptions load;
  load.device = device;
  load.hints.norm_groups = bench_unet_config().norm_groups;
  load.hints.num_head_channels = bench_unet_config().num_head_channels;
  auto model = models::DiffusionModel::load(options.unet, load);
  int64_t parameters = 0;
  for (const auto& p : model->unet()->parameters()) parameters += p.numel();
  out["unet_parameters"] = parameters;

  if (!options.paired.empty()) {  // make bench's paired bursts: one measurement of one precision
    out["paired"] = paired_bursts(model, run, parse_precision(options.precisions[0], "perf --precisions"), scratch);
    std::error_code ignored;
    fs::remove_all(scratch, ignored);
    io::write_json_file(options.out / "perf.json", out);
    return out;
  }

  // 1. Per precision, side by side: ceilings, the training step at the reference shape with
  // its op profile, sampling.
  json precisions = json::object();
  std::optional<Precision> best;
  for (const std::string& name : options.precisions) {
    const Precision precision = parse_precision(name, "perf --precisions");
    // The ceiling is measured before and after the precision's work, and the faster of the two
    // kept per shape: a ceiling is what the machine can do, and this one's speed drifts.
    const json before = ceilings(options, compute_dtype(precision), device);
    json entry = precision_perf(model, run, precision, scratch);
    entry["ceiling"] = faster_ceiling(before, ceilings(options, compute_dtype(precision), device));
    if (!best || entry["train_step"]["median_seconds"].get<double>() <
                     precisions[precision_name(*best)]["train_step"]["median_seconds"].get<double>())
      best = precision;
    precisions[name] = entry;
  }
  check(best.has_value(), "perf --precisions: no precision to measure");
  const std::string best_name = precision_name(*best);
  out["precisions"] = precisions;
  out["best_precision"] = best_name;  // the faster training step here
  std::error_code ignored;

  // 2. Scoring: copy-descriptor throughput at batch 64 (the descriptor runs on the CPU).
  if (device.is_cpu()) {
    const ScoringWork scoring(options, scratch);
    c10::InferenceMode inference;
    const double seconds = time_median([&] { scoring.embed(); }, static_cast<int>(options.score_batches));
    out["scoring"] = {{"descriptor", scoring.name()}, {"batch", options.score_batch}, {"seconds_per_batch", seconds},
                      {"images_per_second", options.score_batch / seconds}};
  }

  // 3. Scaling of the training step with batch and image size, in the best precision.
  json scaling = json::array();
  std::vector<draw::Series> lines;
  PerfOptions short_run = run;
  short_run.warmup_steps = 2;
  short_run.timed_steps = options.scaling_steps;
  for (int64_t size : options.scaling_sizes) {
    draw::Series series{"image " + std::to_string(size) + "x" + std::to_string(size), {}, {}};
    for (int64_t batch : options.scaling_batches) {
      const double seconds = siss_step_seconds(model, batch, size, short_run, *best, scratch);
      scaling.push_back({{"batch", batch}, {"image_size", size}, {"median_seconds", seconds},
                         {"seconds_per_image", seconds / batch}});
      series.x.push_back(static_cast<double>(batch));
      series.values.push_back(seconds);
    }
    lines.push_back(series);
  }
  out["scaling"] = {{"precision", best_name}, {"points", scaling}};
  {
    draw::Canvas canvas(760, 460);
    draw::draw_line_chart(canvas, {20, 20, 720, 420}, "SISS step seconds vs batch (native, " + best_name + ")", lines, "batch");
    canvas.save_png(options.out / "scaling.png");
  }
  if (options.sd15_lora) out["sd15_lora"] = sd15_lora_step(run, device, scratch);
  fs::remove_all(scratch, ignored);
  io::write_json_file(options.out / "perf.json", out);
  return out;
}

}  // namespace lethe::bench
