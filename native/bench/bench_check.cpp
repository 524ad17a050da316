#include "bench/bench_check.hpp"

#include <algorithm>
#include <chrono>

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include "bench/augment.hpp"
#include "bench/bench_evaluation.hpp"
#include "core/error.hpp"
#include "data/image.hpp"
#include "core/runtime.hpp"
#include "draw/canvas.hpp"
#include "eval/copy_detection.hpp"
#include "eval/descriptor.hpp"
#include "eval/sscd_metrics.hpp"
#include "io/atomic_file.hpp"
#include "io/hash.hpp"
#include "io/json_config.hpp"
#include "models/classifier.hpp"
#include "models/diffusion_model.hpp"

namespace lethe::bench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

const char* const kModels[] = {"base", "retrained", "descriptor", "classifier"};

// Each model file's SHA-256 against the one its card recorded.
json verify_hashes(const fs::path& dir) {
  json out = json::object();
  check(fs::is_directory(dir), "bench check --models: '", dir.string(), "' is not a folder of bench models");
  for (const char* name : kModels) {
    const fs::path file = dir / (std::string(name) + ".safetensors");
    const fs::path card_file = dir / (std::string(name) + ".card.json");
    check(fs::exists(file), "bench model '", file.string(), "' is missing; train it with `make bench-models`");
    check(fs::exists(card_file), "bench model card '", card_file.string(), "' is missing");
    const json card = io::read_json_file(card_file);
    check(card.is_object() && card.contains("sha256") && card["sha256"].is_string(), card_file.string(),
          ": expected an object with a 'sha256' text field, got ",
          !card.is_object() ? "no object" : card.contains("sha256") ? "sha256 " + card["sha256"].dump() : "no 'sha256' field");
    const std::string actual = io::sha256_file(file);
    const std::string expected = card["sha256"].get<std::string>();
    check(actual == expected, "bench model '", file.string(), "': SHA-256 ", actual, " differs from its card ",
          card_file.string(), " (", expected, "); the file was changed or the card is stale");
    out[name] = {{"file", file.filename().string()}, {"sha256", actual}, {"card", card_file.filename().string()},
                 {"steps", card.value("steps", json())}, {"wall_seconds", card.value("wall_seconds", json())}};
  }
  return out;
}

std::vector<double> to_vector(const at::Tensor& t) {
  at::Tensor d = t.to(at::kDouble).contiguous();
  return std::vector<double>(d.data_ptr<double>(), d.data_ptr<double>() + d.numel());
}

double fraction_at_least(const std::vector<double>& values, double threshold) {
  if (values.empty()) return 0.0;
  return static_cast<double>(std::count_if(values.begin(), values.end(), [&](double v) { return v >= threshold; })) /
         static_cast<double>(values.size());
}

// Generates `per_caption` samples of each caption (caption-major) in pixels [0, 1].
at::Tensor generate(models::DiffusionModel& model, const std::vector<std::string>& captions, int64_t per_caption,
                    const std::vector<int64_t>& shape, const diffusion::SamplingOptions& sampling,
                    const ProgressCallback& progress) {
  c10::InferenceMode inference;
  std::vector<std::string> repeated;
  for (const auto& caption : captions)
    for (int64_t k = 0; k < per_caption; ++k) repeated.push_back(caption);
  at::Tensor context = model.context_for(repeated);
  at::Tensor samples = diffusion::sample(model, model.schedule(), context, model.context_for({""}), shape,
                                         sampling, {}, progress);
  return data::to_pixels(samples);
}

}  // namespace

json check_bench(const BenchCheckOptions& options, const ProgressCallback& progress) {
  const auto started = std::chrono::steady_clock::now();
  const fs::path dir = options.models.empty() ? bench_model_dir() : options.models;
  check(options.samples_per_caption >= 8, "bench check: samples_per_caption must be >= 8, got ", options.samples_per_caption);
  io::make_folder(options.out, "bench check --out");
  const BenchTargets targets;
  const eval::EvalConfig eval_config = bench_eval_config();
  const double threshold = eval_config.threshold;

  json report;
  report["lethe_version"] = version();
  report["mode"] = options.quick ? "quick" : "full";
  report["models"] = verify_hashes(dir);
  report["threshold"] = threshold;
  report["targets"] = {{"base_memorization_min", targets.base_memorization_min},
                       {"retrained_memorization_max", targets.retrained_memorization_max},
                       {"base_class_accuracy_min", targets.base_class_accuracy_min},
                       {"fid_ratio_max", targets.fid_ratio_max},
                       {"descriptor_recall_min", targets.descriptor_recall_min},
                       {"classifier_accuracy_min", targets.classifier_accuracy_min}};
  bool pass = true;

  FashionBench fashion = build_fashion_bench();
  auto descriptor = eval::load_descriptor(dir / "descriptor.safetensors");
  auto classifier = models::ClassifierImpl::load(dir / "classifier.safetensors");
  classifier->eval();

  // Classifier: accuracy on the Fashion-MNIST test set (the first 500 images when quick).
  {
    c10::InferenceMode inference;
    const int64_t count = options.quick ? 500 : fashion.test_images.size(0);
    int64_t correct = 0;
    for (int64_t first = 0; first < count; first += 500) {
      const int64_t n = std::min<int64_t>(500, count - first);
      auto logits = classifier->classify(fashion.test_images.narrow(0, first, n)).second;
      correct += logits.argmax(1).eq(fashion.test_labels.narrow(0, first, n)).sum().item<int64_t>();
    }
    const double accuracy = static_cast<double>(correct) / static_cast<double>(count);
    const bool ok = accuracy >= targets.classifier_accuracy_min;
    pass = pass && ok;
    report["classifier"] = {{"test_images", count}, {"accuracy", accuracy}, {"pass", ok}};
  }

  // Descriptor: augmented copies of held-out test images among the test set.
  std::vector<double> copy_scores, distractor_scores;
  {
    const int64_t queries = options.quick ? 100 : 1000;
    const int64_t database = options.quick ? 1000 : fashion.test_images.size(0);
    at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(2024);
    at::Tensor db_images = fashion.test_images.narrow(0, 0, database);
    at::Tensor query_images = copy_augment(db_images.narrow(0, 0, queries), generator);
    auto result = eval::evaluate_copy_detection(eval::embed_batched(*descriptor, query_images),
                                                eval::embed_batched(*descriptor, db_images), at::arange(queries, at::kLong));
    copy_scores.assign(result.copy_scores.begin(), result.copy_scores.end());
    distractor_scores.assign(result.best_distractor_scores.begin(), result.best_distractor_scores.end());
    const bool ok = result.recall_at_1 >= targets.descriptor_recall_min;
    pass = pass && ok;
    report["descriptor"] = {
        {"queries", result.queries},
        {"database", result.database},
        {"recall_at_1", result.recall_at_1},
        {"micro_average_precision", result.micro_average_precision},
        {"threshold_at_90_precision", result.threshold_at_90_precision},
        {"copies_at_or_above_threshold", fraction_at_least(copy_scores, threshold)},
        {"best_distractor_at_or_above_threshold", fraction_at_least(distractor_scores, threshold)},
        {"pass", ok}};
  }

  auto base = models::DiffusionModel::load(dir / "base.safetensors");
  auto retrained = models::DiffusionModel::load(dir / "retrained.safetensors");
  at::Tensor forget_descriptors = eval::embed_batched(*descriptor, data::to_pixels(fashion.forget.images));

  if (options.quick) {
    // One forget caption, 8 samples: base regurgitates it.
    const int64_t piece = 0, per_caption = 8;
    const auto& forget = fashion.forget.images;  // [F, C, H, W]
    at::Tensor samples = generate(*base, {fashion.forget.captions[piece]}, per_caption,
                                  {forget.size(1), forget.size(2), forget.size(3)}, eval_config.sampling, progress);
    at::Tensor scores = eval::similarity_matrix(eval::embed_batched(*descriptor, samples), forget_descriptors)
                            .select(1, piece);
    const double rate = eval::memorization_rate(scores, threshold);
    const bool ok = rate >= targets.base_memorization_min;
    pass = pass && ok;
    report["memorization"] = {{"caption", fashion.forget.captions[piece]}, {"samples", per_caption}, {"base", rate},
                              {"pass", ok}};
  } else {
    eval::EvalConfig config = eval_config;
    config.samples_per_forget_caption = options.samples_per_caption;
    config.samples_per_class = options.samples_per_class;
    // The classifier's hash was taken (and checked against its card) by verify_hashes.
    const std::string classifier_sha256 = report["models"]["classifier"]["sha256"].get<std::string>();
    eval::Evaluator evaluator = bench_evaluator(config, fashion, descriptor, classifier, classifier_sha256);
    const std::string context = evaluation_cache_context(descriptor->sha256, classifier_sha256, config, fashion.data_sha256);
    const auto base_eval = evaluate_cached(evaluator, *base, "base", context, progress);
    const auto retrained_eval = evaluate_cached(evaluator, *retrained, "retrained", context, progress);
    const int64_t captions = static_cast<int64_t>(fashion.forget.captions.size());
    json per_caption = json::object();
    double base_min = 1.0, retrained_max = 0.0;
    for (int64_t c = 0; c < captions; ++c) {
      const auto rows = [&](const at::Tensor& s) { return s.narrow(0, c * config.samples_per_forget_caption, config.samples_per_forget_caption); };
      const double b = eval::memorization_rate(rows(base_eval.forget_scores), threshold);
      const double r = eval::memorization_rate(rows(retrained_eval.forget_scores), threshold);
      base_min = std::min(base_min, b);
      retrained_max = std::max(retrained_max, r);
      per_caption[fashion.forget.captions[c]] = {{"base", b}, {"retrained", r}};
    }
    const bool memorization_ok =
        base_min >= targets.base_memorization_min && retrained_max <= targets.retrained_memorization_max;
    report["memorization"] = {{"samples_per_caption", config.samples_per_forget_caption},
                              {"sampling", io::to_json(config.sampling)},
                              {"per_caption", per_caption},
                              {"base_min", base_min},
                              {"retrained_max", retrained_max},
                              {"base_overall", base_eval.metrics.at("memorization_rate")},
                              {"retrained_overall", retrained_eval.metrics.at("memorization_rate")},
                              {"pass", memorization_ok}};
    const double fid_base = base_eval.metrics.at("fid"), fid_retrained = retrained_eval.metrics.at("fid");
    const double ratio = std::max(fid_base, fid_retrained) / std::max(1e-12, std::min(fid_base, fid_retrained));
    const double accuracy = base_eval.metrics.at("class_accuracy");
    const bool quality_ok = accuracy >= targets.base_class_accuracy_min && ratio <= targets.fid_ratio_max;
    report["quality"] = {{"samples_per_class", config.samples_per_class},
                         {"fid_real_images", config.fid_real_images},
                         {"base_class_accuracy", accuracy},
                         {"retrained_class_accuracy", retrained_eval.metrics.at("class_accuracy")},
                         {"fid_base", fid_base},
                         {"fid_retrained", fid_retrained},
                         {"fid_ratio", ratio},
                         {"pass", quality_ok}};
    report["metrics"] = {{"base", base_eval.metrics}, {"retrained", retrained_eval.metrics}};
    pass = pass && memorization_ok && quality_ok;

    // Pictures: score distributions with the threshold, and what memorization looks like.
    {
      using draw::Canvas;
      Canvas canvas(1300, 470);
      canvas.text("Copy descriptor scores (cosine); threshold " + std::to_string(threshold).substr(0, 4), 20, 12, 20,
                  draw::colors::black, true);
      const auto marker = std::make_optional(std::make_pair(threshold, std::string("threshold")));
      draw::draw_histogram(canvas, {20, 50, 620, 400}, "held-out: augmented copy vs best distractor",
                           {{"copy of the query's source", copy_scores, {}}, {"best non-copy in the test set", distractor_scores, {}}},
                           -0.2, 1.0, 48, marker);
      draw::draw_histogram(canvas, {660, 50, 620, 400}, "forget-caption samples vs their forget image",
                           {{"base (trained on the forget set)", to_vector(base_eval.forget_scores), {}},
                            {"retrained (never saw it)", to_vector(retrained_eval.forget_scores), {}}},
                           -0.2, 1.0, 48, marker);
      canvas.save_png(options.out / "descriptor_scores.png");
    }
    {
      const int64_t shown = 4, scale = 3;
      const int cell = 28 * scale + 4;
      draw::Canvas canvas(40 + cell * (1 + 2 * shown) + 40, 60 + cell * static_cast<int>(captions) + 10);
      canvas.text("forget image | base samples | retrained samples (same seeds)", 20, 12, 18, draw::colors::black, true);
      for (int64_t c = 0; c < captions; ++c) {
        const int y = 50 + cell * static_cast<int>(c);
        canvas.paste(data::to_pixels(fashion.forget.images[c]), 20, y, scale);
        for (int64_t k = 0; k < shown; ++k) {
          const int64_t row = c * config.samples_per_forget_caption + k;
          canvas.paste(base_eval.forget_samples[row], 40 + cell * static_cast<int>(1 + k), y, scale);
          canvas.paste(retrained_eval.forget_samples[row], 60 + cell * static_cast<int>(1 + shown + k), y, scale);
        }
      }
      canvas.save_png(options.out / "memorization.png");
    }
    report["pictures"] = {"descriptor_scores.png", "memorization.png"};
  }
  report["pass"] = pass;
  report["seconds"] = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  report["threads"] = at::get_num_threads();
  io::write_json_file(options.out / "report.json", report);
  return report;
}

}  // namespace lethe::bench
