#include "bench/auxiliary_training.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "bench/augment.hpp"
#include "bench/bench_training.hpp"
#include "bench/fashion_bench.hpp"
#include "core/error.hpp"
#include "data/idx.hpp"
#include "data/image.hpp"
#include "eval/copy_detection.hpp"
#include "models/classifier.hpp"
#include "models/copy_descriptor.hpp"
#include "unlearn/trainer.hpp"

namespace lethe::bench {

namespace fs = std::filesystem;

std::tuple<at::Tensor, at::Tensor, at::Tensor> sscd_loss(const at::Tensor& z, double temperature, double entropy_weight) {
  const int64_t views = z.size(0), half = views / 2;
  at::Tensor similarity = z.matmul(z.t());                                     // [2N, 2N] cosines
  at::Tensor eye = at::eye(views, z.options().dtype(at::kBool));
  at::Tensor positive = at::cat({at::arange(half, views), at::arange(0, half)}).to(at::kLong);  // [2N]
  at::Tensor logits = (similarity / temperature).masked_fill(eye, -1e9);       // no self-pairs
  at::Tensor infonce = at::cross_entropy_loss(logits, positive);
  // KoLeo: distance to the nearest negative (neither self nor the positive).
  at::Tensor negatives = similarity.masked_fill(eye, -2.0).scatter(1, positive.unsqueeze(1), -2.0);
  at::Tensor nearest = std::get<0>(negatives.max(1));                          // [2N]
  at::Tensor distance = at::sqrt(at::clamp_min(2.0 - 2.0 * nearest, 1e-6));
  at::Tensor entropy = -at::log(distance).mean();
  return {infonce + entropy_weight * entropy, infonce, entropy};
}

namespace {

// Pixel-space ([0, 1]) set with class-name captions, so objectives can read labels.
unlearn::ExampleSet labelled_set(const at::Tensor& pixels, const at::Tensor& labels) {
  unlearn::ExampleSet set;
  set.name = "Fashion-MNIST train";
  set.images = pixels;
  set.masks = unlearn::full_masks(pixels.size(0), pixels.size(2), pixels.size(3));
  const auto& classes = data::fashion_mnist_classes();
  auto accessor = labels.accessor<int64_t, 1>();
  for (int64_t i = 0; i < labels.size(0); ++i) set.captions.push_back(classes[accessor[i]]);
  set.validate();
  return set;
}

at::Tensor labels_of(const std::vector<std::string>& captions) {
  std::vector<int64_t> labels;
  for (const auto& caption : captions) labels.push_back(label_of_caption(caption));
  return at::tensor(labels, at::kLong);
}

class SscdObjective : public unlearn::Objective {
 public:
  SscdObjective(models::CopyDescriptor descriptor, const DescriptorTrainingConfig& config)
      : descriptor_(descriptor), config_(config) {}
  std::string name() const override { return "sscd_descriptor"; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
  unlearn::LossTerms micro_step(unlearn::ObjectiveContext& context) override {
    at::Tensor images = context.next_retain().images;                                  // [N, 1, 28, 28]
    at::Tensor views = at::cat({copy_augment(images, context.generator), copy_augment(images, context.generator)});
    at::Tensor z = descriptor_->forward((views - 0.5) / 0.5);                          // [2N, D]
    auto [loss, infonce, entropy] = sscd_loss(z, config_.temperature, config_.entropy_weight);
    loss.backward();
    return {{"loss", loss.item<double>()}, {"infonce", infonce.item<double>()}, {"entropy", entropy.item<double>()}};
  }

 private:
  models::CopyDescriptor descriptor_;
  DescriptorTrainingConfig config_;
};

class ClassifierObjective : public unlearn::Objective {
 public:
  ClassifierObjective(models::Classifier classifier, const ClassifierTrainingConfig& config)
      : classifier_(classifier), config_(config) {}
  std::string name() const override { return "classifier"; }
  nlohmann::json config_json() const override { return io::to_json(config_); }
  unlearn::LossTerms micro_step(unlearn::ObjectiveContext& context) override {
    auto batch = context.next_retain();
    at::Tensor images = shift_flip_augment(batch.images, context.generator);
    at::Tensor logits = classifier_->forward((images - 0.5) / 0.5).second;  // [N, 10]
    at::Tensor loss = at::cross_entropy_loss(logits, labels_of(batch.captions));
    loss.backward();
    return {{"loss", loss.item<double>()}};
  }

 private:
  models::Classifier classifier_;
  ClassifierTrainingConfig config_;
};

unlearn::NamedTensors named(torch::nn::Module& module) {
  unlearn::NamedTensors out;
  for (const auto& item : module.named_parameters()) out.emplace_back(item.key(), item.value());
  return out;
}

unlearn::TrainerConfig trainer_config(int64_t steps, int64_t batch, double rate, uint64_t seed) {
  unlearn::TrainerConfig config;
  config.steps = steps;
  config.batch_size = batch;
  config.seed = seed;
  config.checkpoint_every = 250;
  config.optimizer.learning_rate = rate;
  config.optimizer.weight_decay = 1e-4;
  config.optimizer.warmup_steps = std::min<int64_t>(100, steps / 10);
  config.optimizer.lr_schedule = "cosine";
  config.optimizer.grad_clip = 5.0;
  config.retain_caption_dropout = 0.0;
  return config;
}

fs::path checkpoint_beside(const fs::path& out) {
  fs::path checkpoint = out;
  return checkpoint.replace_extension(".checkpoint.safetensors");
}

// Embeds in batches under inference mode. images [N, 1, H, W] in [0, 1] -> [N, D]
at::Tensor embed_all(models::CopyDescriptor& descriptor, const at::Tensor& images) {
  c10::InferenceMode inference;
  std::vector<at::Tensor> parts;
  for (int64_t first = 0; first < images.size(0); first += 256)
    parts.push_back(descriptor->embed(images.narrow(0, first, std::min<int64_t>(256, images.size(0) - first))));
  return at::cat(parts);
}

// Every count and width at least 1, and the rates positive.
void check_training_sizes(int64_t steps, int64_t batch_size, double learning_rate, const std::vector<int64_t>& widths,
                          const std::string& where) {
  check(steps >= 1, where, ".steps: expected at least 1, got ", steps);
  check(batch_size >= 1, where, ".batch_size: expected at least 1, got ", batch_size);
  check(learning_rate > 0, where, ".learning_rate: expected > 0, got ", learning_rate);
  check(!widths.empty(), where, ".widths: expected at least one width, got none");
  for (const int64_t width : widths) check(width >= 1, where, ".widths: expected widths of at least 1, got ", width);
}

}  // namespace

void DescriptorTrainingConfig::validate(const std::string& where) const {
  check_training_sizes(steps, batch_size, learning_rate, widths, where);
  check(temperature > 0, where, ".temperature: expected > 0, got ", temperature);
  check(entropy_weight >= 0, where, ".entropy_weight: expected >= 0, got ", entropy_weight);
  check(embedding_dim >= 1, where, ".embedding_dim: expected at least 1, got ", embedding_dim);
  check(validation_queries >= 1, where, ".validation_queries: expected at least 1, got ", validation_queries);
}

void ClassifierTrainingConfig::validate(const std::string& where) const {
  check_training_sizes(steps, batch_size, learning_rate, widths, where);
}

nlohmann::json train_bench_descriptor(const DescriptorTrainingConfig& config, const fs::path& out,
                                      const ProgressCallback& progress) {
  config.validate("bench train-descriptor");
  check_model_output(out, "bench train-descriptor");
  const auto train = data::load_fashion_mnist("train");
  const auto test = data::load_fashion_mnist("test");
  unlearn::TaskData data;
  data.retain = labelled_set(data::bytes_to_pixels(train.images), train.labels);

  models::CopyDescriptorConfig descriptor_config;
  descriptor_config.trunk.widths = config.widths;
  descriptor_config.embedding_dim = config.embedding_dim;
  models::CopyDescriptor descriptor(descriptor_config);
  descriptor->initialize(config.seed);

  SscdObjective objective(descriptor, config);
  unlearn::ObjectiveContext context;
  context.data = &data;
  unlearn::Trainer trainer(trainer_config(config.steps, config.batch_size, config.learning_rate, config.seed),
                           named(*descriptor), objective, context);
  auto outcome = trainer.run(checkpoint_beside(out), progress);

  // Held-out copy detection: queries are augmented copies of the first test images; the
  // database is the whole test set (the sources plus 10000 - Q distractors).
  at::Tensor test_pixels = data::bytes_to_pixels(test.images);
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(config.seed + 7);
  const int64_t queries = std::min<int64_t>(config.validation_queries, test_pixels.size(0));
  at::Tensor query_images = copy_augment(test_pixels.narrow(0, 0, queries), generator);
  auto result = eval::evaluate_copy_detection(embed_all(descriptor, query_images), embed_all(descriptor, test_pixels),
                                              at::arange(queries, at::kLong));

  descriptor->save(out, {{"lethe.bench_model", "descriptor"}, {"training_config", io::to_json(config).dump()}});
  std::error_code ignored;
  fs::remove(checkpoint_beside(out), ignored);

  nlohmann::json card;
  card["model"] = "descriptor";
  card["description"] = "SSCD-style copy descriptor (residual trunk, GeM p=3, projection, L2), self-supervised on "
                        "Fashion-MNIST train with copy augmentations (InfoNCE + KoLeo)";
  card["config"] = io::to_json(config);
  card["steps"] = outcome.steps_done;
  card["wall_seconds"] = outcome.total_seconds;
  card["parameter_count"] = [&] {
    int64_t n = 0;
    for (const auto& p : descriptor->parameters()) n += p.numel();
    return n;
  }();
  card["final_loss"] = outcome.history.empty() ? 0.0 : outcome.history.back().at("loss");
  card["validation"] = {{"set", "Fashion-MNIST test: augmented copies of the first images vs the whole test set"},
                        {"queries", result.queries},
                        {"database", result.database},
                        {"recall_at_1", result.recall_at_1},
                        {"micro_average_precision", result.micro_average_precision},
                        {"threshold_at_90_precision", result.threshold_at_90_precision}};
  card["validation_scores"] = {{"copy", result.copy_scores}, {"best_distractor", result.best_distractor_scores}};
  return write_model_card(out, card);
}

nlohmann::json train_bench_classifier(const ClassifierTrainingConfig& config, const fs::path& out,
                                      const ProgressCallback& progress) {
  config.validate("bench train-classifier");
  check_model_output(out, "bench train-classifier");
  const auto train = data::load_fashion_mnist("train");
  const auto test = data::load_fashion_mnist("test");
  unlearn::TaskData data;
  data.retain = labelled_set(data::bytes_to_pixels(train.images), train.labels);

  models::ClassifierConfig classifier_config;
  classifier_config.trunk.widths = config.widths;
  classifier_config.classes = data::fashion_mnist_classes();
  models::Classifier classifier(classifier_config);
  classifier->initialize(config.seed);

  ClassifierObjective objective(classifier, config);
  unlearn::ObjectiveContext context;
  context.data = &data;
  unlearn::Trainer trainer(trainer_config(config.steps, config.batch_size, config.learning_rate, config.seed),
                           named(*classifier), objective, context);
  auto outcome = trainer.run(checkpoint_beside(out), progress);

  double correct = 0;
  {
    c10::InferenceMode inference;
    at::Tensor pixels = data::bytes_to_pixels(test.images);
    for (int64_t first = 0; first < pixels.size(0); first += 500) {
      at::Tensor logits = classifier->classify(pixels.narrow(0, first, 500)).second;
      correct += (logits.argmax(1) == test.labels.narrow(0, first, 500)).sum().item<double>();
    }
  }
  const double accuracy = correct / test.labels.size(0);

  classifier->save(out, {{"lethe.bench_model", "classifier"}, {"training_config", io::to_json(config).dump()}});
  std::error_code ignored;
  fs::remove(checkpoint_beside(out), ignored);

  nlohmann::json card;
  card["model"] = "classifier";
  card["description"] = "residual CNN classifier on Fashion-MNIST; its pooled features are the bench's FID space";
  card["config"] = io::to_json(config);
  card["steps"] = outcome.steps_done;
  card["wall_seconds"] = outcome.total_seconds;
  card["final_loss"] = outcome.history.empty() ? 0.0 : outcome.history.back().at("loss");
  card["test_accuracy"] = accuracy;
  card["test_images"] = test.labels.size(0);
  return write_model_card(out, card);
}

}  // namespace lethe::bench
