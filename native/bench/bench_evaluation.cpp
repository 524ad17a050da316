#include "bench/bench_evaluation.hpp"

#include <ATen/ATen.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "core/runtime.hpp"
#include "data/batching.hpp"
#include "data/idx.hpp"
#include "dist/group.hpp"
#include "eval/report.hpp"
#include "io/atomic_file.hpp"
#include "io/hash.hpp"
#include "io/json_config.hpp"
#include "io/output_path.hpp"
#include "io/safetensors.hpp"
#include "models/attention_kernel.hpp"
#include "models/unet_memory.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>

namespace lethe::bench {

std::filesystem::path bench_model_dir() { return resource_dir() / "models" / "bench"; }

eval::EvalData bench_eval_data(const FashionBench& bench, int64_t retain_probes, uint64_t seed) {
  eval::EvalData data;
  data.forget_images = data::to_pixels(bench.forget.images);
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
  data.retain_images = data::to_pixels(bench.train_clean.images.index_select(0, index));
  for (int64_t i : picks) {
    const std::string& variants = bench.train_clean.captions[i];
    data.retain_captions.push_back(class_caption(label_of_caption(variants)));
  }
  data.real_images = bench.test_images;
  data.real_labels = bench.test_labels;
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

namespace {

// The shipped model (base / retrained) a file hash belongs to, per the model cards; empty
// for any other model.
std::string shipped_model_name(const std::string& sha256) {
  if (sha256.empty()) return "";
  for (const char* name : {"base", "retrained"}) {
    const auto card = bench_model_dir() / (std::string(name) + ".card.json");
    if (std::filesystem::exists(card) && io::read_json_file(card).value("sha256", "") == sha256) return name;
  }
  return "";
}

const char* const kCacheVersion = "lethe-eval-cache/2";  // 2: with the attacks

// models/bench/eval-cache, or $LETHE_EVAL_CACHE: <kind>-<key[:16]>.safetensors, kind a shipped
// model's name or "references".
std::filesystem::path cache_file(const std::string& kind, const std::string& key) {
  const char* override_dir = std::getenv("LETHE_EVAL_CACHE");
  const std::filesystem::path dir = override_dir && *override_dir ? std::filesystem::path(override_dir)
                                                                  : bench_model_dir() / "eval-cache";
  return dir / (kind + "-" + key.substr(0, 16) + ".safetensors");
}

// read(entry) of the cache entry in `file` when it holds this key. An entry that is absent, holds
// another key or cannot be read (truncated, edited, written by another version) is a miss: the
// caller computes again and write_keyed replaces the entry.
template <typename T, typename Read>
std::optional<T> read_keyed(const std::filesystem::path& file, const std::string& key, Read read) {
  if (!std::filesystem::exists(file)) return std::nullopt;
  try {
    const io::SafetensorsFile cached = io::SafetensorsFile::open(file);
    if (!cached.metadata().count("key") || cached.metadata().at("key") != key) return std::nullopt;
    return read(cached);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// Stores tensors and metadata (with the key) as the cache entry `file`; a cache that cannot be
// written (a read-only install) is skipped: the work is done again next time.
void write_keyed(const std::filesystem::path& file, const std::string& key, const std::map<std::string, at::Tensor>& tensors,
                 io::Metadata metadata) {
  try {
    std::filesystem::create_directories(file.parent_path());
    metadata["key"] = key;
    io::save_safetensors(file, tensors, metadata);
  } catch (const std::exception&) {
    // skipped, as said above
  }
}

// A model's cached evaluation, read from its entry `cached` (`file`, for messages).
eval::ModelEvaluation read_entry(const io::SafetensorsFile& cached, const std::filesystem::path& file,
                                 const std::string& name) {
  const auto& metadata = cached.metadata();
  eval::ModelEvaluation result;
  result.name = name;
  const nlohmann::json metrics = io::parse_json(metadata.at("metrics"), file.string());  // keep it alive for items()
  for (const auto& [metric, value] : metrics.items())
    result.metrics[metric] = value.is_null() ? std::nan("") : value.get<double>();  // JSON writes NaN as null
  result.seconds = std::stod(metadata.at("seconds"));
  if (metadata.count("stage_seconds"))  // entries written before stage timings have none
    result.stage_seconds = io::parse_json(metadata.at("stage_seconds"), file.string()).get<std::map<std::string, double>>();
  result.forget_samples = cached.tensor("forget_samples").clone();
  result.forget_scores = cached.tensor("forget_scores").clone();
  result.forget_descriptors = cached.tensor("forget_descriptors").clone();
  result.class_samples = cached.tensor("class_samples").clone();
  result.class_predictions = cached.tensor("class_predictions").clone();
  if (metadata.count("attacks")) {
    result.attacks = io::parse_json(metadata.at("attacks"), file.string());
    result.attack_samples = cached.tensor("attack_samples").clone();
    result.attack_success = cached.tensor("attack_success").to(at::kBool);
  }
  return result;
}

void write_cached(const std::filesystem::path& file, const std::string& key, const eval::ModelEvaluation& result) {
  const nlohmann::json metrics = result.metrics;
  std::map<std::string, at::Tensor> tensors = {{"forget_samples", result.forget_samples.contiguous()},
                                               {"forget_scores", result.forget_scores.contiguous()},
                                               {"forget_descriptors", result.forget_descriptors.contiguous()},
                                               {"class_samples", result.class_samples.contiguous()},
                                               {"class_predictions", result.class_predictions.contiguous()}};
  io::Metadata metadata = {{"metrics", metrics.dump()}, {"seconds", std::to_string(result.seconds)},
                           {"stage_seconds", nlohmann::json(result.stage_seconds).dump()}};
  if (!result.attacks.is_null()) {
    tensors["attack_samples"] = result.attack_samples.contiguous();
    tensors["attack_success"] = result.attack_success.to(at::kByte).contiguous();
    metadata["attacks"] = result.attacks.dump();
  }
  write_keyed(file, key, tensors, metadata);
}

const char* const kReferencesVersion = "lethe-eval-references/1";

// The references' key: the descriptor's and the classifier's file hashes and the bytes of the
// images they embed (so another way of building the bench data is another key).
std::string references_key(const std::string& descriptor_sha256, const std::string& classifier_sha256,
                           const eval::EvalData& data, int64_t real) {
  io::Sha256 hash;
  hash.update(std::string_view(kReferencesVersion));
  hash.update(std::string_view(descriptor_sha256));
  hash.update(std::string_view(classifier_sha256));
  hash.update(data.forget_images);
  hash.update(data.retain_images);
  hash.update(data.real_images.narrow(0, 0, real));
  return hash.hex();
}

const std::map<std::string, at::Tensor eval::EvalReferences::*> kReferenceTensors = {
    {"forget_descriptors", &eval::EvalReferences::forget_descriptors},
    {"retain_descriptors", &eval::EvalReferences::retain_descriptors},
    {"real_features", &eval::EvalReferences::real_features}};

eval::EvalReferences read_references(const io::SafetensorsFile& cached) {
  eval::EvalReferences references;
  for (const auto& [name, member] : kReferenceTensors) references.*member = cached.tensor(name).clone();
  return references;
}

void write_references(const std::filesystem::path& file, const std::string& key, const eval::EvalReferences& references) {
  std::map<std::string, at::Tensor> tensors;
  for (const auto& [name, member] : kReferenceTensors) tensors[name] = (references.*member).contiguous();
  write_keyed(file, key, tensors, {});
}

}  // namespace

eval::Evaluator bench_evaluator(const eval::EvalConfig& config, const FashionBench& fashion,
                                std::shared_ptr<eval::Descriptor> descriptor,
                                std::shared_ptr<models::ClassifierImpl> classifier, const std::string& classifier_sha256,
                                const dist::Group* group, std::string* cached_from) {
  eval::EvalData data = bench_eval_data(fashion, config.retain_probes, config.sampling.seed);
  const auto make = [&](std::optional<eval::EvalReferences> references) {
    eval::Evaluator evaluator(config, data, descriptor, classifier, std::move(references));
    evaluator.set_group(group);
    return evaluator;
  };
  if (descriptor->sha256.empty() || classifier_sha256.empty()) return make(std::nullopt);
  const std::string key =
      references_key(descriptor->sha256, classifier_sha256, data, eval::reference_real_images(config, data));
  const auto file = cache_file("references", key);
  if (auto cached = read_keyed<eval::EvalReferences>(file, key, read_references)) {
    try {
      eval::Evaluator evaluator = make(std::move(cached));
      if (cached_from) *cached_from = file.filename().string();
      return evaluator;
    } catch (const Error&) {
      // Tensors of other shapes under this key (an edited entry): computed again and replaced.
    }
  }
  eval::Evaluator evaluator = make(std::nullopt);
  if (dist::writes_files(group)) write_references(file, key, evaluator.references());
  return evaluator;
}

std::string evaluation_cache_context(const std::string& descriptor_sha256, const std::string& classifier_sha256,
                                     const eval::EvalConfig& config, const std::string& data_sha256) {
  if (descriptor_sha256.empty() || classifier_sha256.empty()) return "";
  // The precision as it resolves on this machine (the bench models live on the CPU). fp32
  // leaves the precision key out and says how its forwards run instead (below).
  nlohmann::json settings = io::to_json(config);
  const Precision precision = resolve_precision(config.precision, "evaluation settings .precision").precision;
  if (precision == Precision::fp32) settings.erase("precision");
  else settings["precision"] = precision_name(precision);
  // bf16 sampling runs a bf16 channels-last copy of the model (DiffusionModel::sampling_copy),
  // not autocast since 2026-12-04: other numbers, so other keys.
  if (precision == Precision::bf16) settings["bf16_sampling"] = "channels-last copy";
  // bf16 forwards under inference mode attend with Lethe's kernel since 2026-12-07 on CPUs with
  // AVX-512 (models/attention_kernel.hpp): other numbers at bf16 rounding, so other keys.
  if (precision == Precision::bf16 && models::small_attention_available())
    settings["bf16_attention"] = "small-attention kernel";
  // fp32 sampling and evaluation forwards (inference mode) run channels-last since 2026-12-05
  // (DiffusionModel::predict): other numbers at fp32 rounding, so other keys.
  if (precision == Precision::fp32) settings["fp32_inference"] = "channels-last";
  // The attacks' forwards with gradients run channels-last in bf16 since 2026-12-05 (the group
  // norm's backward, DiffusionModel::predict): other numbers, so other keys.
  if (precision == Precision::bf16 && config.attacks.enabled) settings["bf16_gradients"] = "channels-last";
  // The prompt attack's fp32 forwards with gradients run channels-last since 2026-12-06 (numbers
  // that differ at fp32 rounding): the fp32 entries of before then no longer match.
  if (precision == Precision::fp32 && config.attacks.enabled) settings["fp32_prompt_attack"] = "channels-last";
  // Concept evaluations carry fid_other_classes since 2026-12-04: entries from before lack it.
  if (!config.erased_concept.empty()) settings["concept_metrics"] = "with fid_other_classes";
  return nlohmann::json{{"version", kCacheVersion},
                        {"descriptor", descriptor_sha256},
                        {"classifier", classifier_sha256},
                        {"config", settings},
                        {"data", data_sha256}}
      .dump();
}

eval::ModelEvaluation evaluate_cached(eval::Evaluator& evaluator, models::DiffusionModel& model, const std::string& name,
                                      const std::string& context, const ProgressCallback& progress,
                                      std::string* cached_from) {
  const std::string shipped = context.empty() ? "" : shipped_model_name(model.source_sha256);
  if (shipped.empty()) return evaluator.evaluate(model, name, progress);
  const std::string key = io::sha256_hex(context + model.source_sha256);
  const auto file = cache_file(shipped, key);
  if (auto cached = read_keyed<eval::ModelEvaluation>(
          file, key, [&](const io::SafetensorsFile& entry) { return read_entry(entry, file, name); })) {
    if (cached_from) *cached_from = file.filename().string();
    return std::move(*cached);
  }
  eval::ModelEvaluation result = evaluator.evaluate(model, name, progress);
  if (dist::writes_files(evaluator.group())) write_cached(file, key, result);  // every rank has the same
  return result;
}

nlohmann::json evaluate_on_bench(const std::vector<NamedModel>& models, const std::filesystem::path& out,
                                 const eval::EvalConfig& config, std::shared_ptr<eval::Descriptor> descriptor,
                                 std::shared_ptr<models::ClassifierImpl> classifier, const ProgressCallback& progress,
                                 const dist::Group* group) {
  check(!models.empty(), "evaluation: no model to evaluate");
  const auto started = std::chrono::steady_clock::now();
  const auto dir = bench_model_dir();
  if (!descriptor) descriptor = eval::load_descriptor(dir / "descriptor.safetensors");
  // The shipped models' evaluations come from the cache when the classifier is the bench's
  // own (its file hash is then known).
  const std::string classifier_sha256 = classifier ? "" : io::sha256_file(dir / "classifier.safetensors");
  if (!classifier) {
    classifier = models::ClassifierImpl::load(dir / "classifier.safetensors");
    classifier->eval();
  }
  FashionBench fashion = build_fashion_bench();
  std::string references_from;
  eval::Evaluator evaluator =
      bench_evaluator(config, fashion, descriptor, classifier, classifier_sha256, group, &references_from);
  const std::string context = evaluation_cache_context(descriptor->sha256, classifier_sha256, config, fashion.data_sha256);
  // Loading the data, embedding the reference images, the real images' classifier features.
  const double setup_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  std::vector<std::unique_ptr<eval::ModelEvaluation>> results;
  nlohmann::json files;
  const eval::ModelEvaluation* baseline = nullptr;
  const eval::ModelEvaluation* reference = nullptr;
  nlohmann::json cache_use = nlohmann::json::object();
  for (const NamedModel& entry : models) {
    files[entry.name] = {{"path", entry.model->source_path}, {"sha256", entry.model->source_sha256}};
    std::string cached_from;
    results.push_back(std::make_unique<eval::ModelEvaluation>(
        evaluate_cached(evaluator, *entry.model, entry.name, context, progress, &cached_from)));
    if (!cached_from.empty()) cache_use[entry.name] = cached_from;
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
  nlohmann::json extra = {{"model_files", files}, {"cached_evaluations", cache_use}, {"setup_seconds", setup_seconds}};
  if (!references_from.empty()) extra["cached_references"] = references_from;
  if (!dist::spans_ranks(group)) return eval::write_report(out, evaluator, views, seconds, extra);
  nlohmann::json report;
  if (group->leader()) report = eval::write_report(out, evaluator, views, seconds, extra);
  group->barrier("waiting for rank 0 to write the report");
  return group->leader() ? report : io::read_json_file(out / "report.json");
}

EvalOutcome run_eval_request(const EvalRequest& request, const ProgressCallback& progress, const dist::Group* group) {
  check(!request.model.empty(), "lethe eval: --model: expected the model to evaluate (.safetensors), got none");
  EvalOutcome outcome;
  eval::EvalConfig& config = outcome.config;
  config = bench_eval_config();
  if (!request.config_file.empty())
    config = io::merge_config(config, io::read_json_file(request.config_file), request.config_file);
  check(request.seed >= 0, "lethe eval: --seed: expected a seed >= 0, got ", request.seed);
  config.sampling.seed = static_cast<uint64_t>(request.seed);
  // -1: not given (the settings' count)
  for (const auto& [given, name] : {std::pair{request.samples_per_caption, "--samples-per-caption"},
                                    std::pair{request.samples_per_class, "--samples-per-class"}})
    check(given == -1 || given >= 1, "lethe eval: ", name, ": expected at least 1 sample, got ", given);
  if (request.samples_per_caption > 0) config.samples_per_forget_caption = request.samples_per_caption;
  if (request.samples_per_class > 0) config.samples_per_class = request.samples_per_class;
  if (!request.erased_concept.empty()) config.erased_concept = request.erased_concept;
  if (request.no_attacks) config.attacks.enabled = false;
  if (!request.precision.empty()) config.precision = request.precision;
  const std::string out = dist::from_leader(group, "sharing the report folder", [&] {
    const std::string claimed =
        request.out.empty() ? io::claim_numbered_folder("out", "eval-" + timestamp()).string() : request.out;
    check(!std::filesystem::exists(std::filesystem::path(claimed) / "report.json"), "lethe eval: '", claimed,
          "' already holds a report; choose another --out (nothing is overwritten)");
    io::make_folder(claimed, "lethe eval --out");  // before the work, not after it
    io::require_empty_folder(claimed, "lethe eval: folder", "choose a new or empty --out");
    return claimed;
  });
  outcome.out = out;
  std::vector<NamedModel> entries = {{"evaluated", models::DiffusionModel::load(request.model)}};
  if (!request.baseline.empty()) entries.push_back({"baseline", models::DiffusionModel::load(request.baseline)});
  if (!request.reference.empty()) entries.push_back({"reference", models::DiffusionModel::load(request.reference)});
  std::shared_ptr<eval::Descriptor> descriptor;
  if (!request.descriptor.empty()) descriptor = eval::load_descriptor(request.descriptor);
  std::shared_ptr<models::ClassifierImpl> classifier;
  if (!request.classifier.empty()) {
    classifier = models::ClassifierImpl::load(request.classifier);
    classifier->eval();
  }
  outcome.report = evaluate_on_bench(entries, outcome.out, config, descriptor, classifier, progress, group);
  return outcome;
}

eval::EvalConfig fit_to_memory(eval::EvalConfig config, const std::vector<NamedModel>& models, const std::string& where) {
  check(!models.empty(), where, ": expected at least one model to evaluate");
  const auto& unet = models.front().model->unet()->config();
  const int64_t samples =
      static_cast<int64_t>(models.size()) * 10 * (config.samples_per_forget_caption + config.samples_per_class);
  config.sampling.batch_size =
      models::sampling_batch_that_fits(unet, samples, unet.in_channels, 28, 28, config.sampling.guidance != 1.0,
                                       config.sampling.batch_size, available_memory_bytes(), where);
  return config;
}

}  // namespace lethe::bench
