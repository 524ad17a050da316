#include "bench/bench_training.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/error.hpp"
#include "core/runtime.hpp"
#include "io/atomic_file.hpp"
#include "io/hash.hpp"
#include "models/diffusion_model.hpp"
#include "unlearn/trainer.hpp"

namespace lethe::bench {

namespace fs = std::filesystem;

void DiffusionTrainingConfig::validate(const std::string& where) const {
  check(variant == "base" || variant == "retrained", where, ".variant: expected base or retrained, got '", variant, "'");
  check(steps >= 1 && batch_size >= 1, where, ": steps and batch_size must be >= 1");
}

void check_model_output(const fs::path& out, const std::string& where) {
  check(!out.empty() && out.has_filename(), where, " --out: expected a .safetensors file path, got '", out.string(), "'");
  check(!fs::is_directory(out), where, " --out: '", out.string(), "' is a folder, expected a .safetensors file path");
  io::make_folder(out.parent_path().empty() ? fs::path(".") : out.parent_path(), str(where, " --out"));
}

nlohmann::json write_model_card(const fs::path& model_file, nlohmann::json card) {
  card["file"] = model_file.filename().string();
  card["sha256"] = io::sha256_file(model_file);
  card["lethe_version"] = version();
  fs::path card_file = model_file;
  card_file.replace_extension(".card.json");
  io::write_json_file(card_file, card);
  return card;
}

nlohmann::json train_bench_diffusion(const DiffusionTrainingConfig& config, const fs::path& out,
                                     const ProgressCallback& progress) {
  config.validate("bench diffusion training");
  check_model_output(out, "bench train-diffusion");
  FashionBench bench = build_fashion_bench(config.bench);
  unlearn::TaskData data;
  data.retain = config.variant == "base" ? training_set_with_forget(bench, config.bench) : bench.train_clean;

  models::UNet unet(bench_unet_config());
  unet->initialize(config.seed);
  models::TokenEncoder encoder(bench_token_encoder_config());
  encoder->initialize(config.seed + 1);
  diffusion::ScheduleConfig schedule;  // linear 1e-4..0.02, 1000 steps, epsilon (DDPM pixel models)
  auto model = std::make_shared<models::DiffusionModel>(unet, encoder, schedule);

  unlearn::TrainerConfig trainer_config;
  trainer_config.steps = config.steps;
  trainer_config.batch_size = config.batch_size;
  trainer_config.seed = config.seed;
  trainer_config.ema_decay = config.ema_decay;
  trainer_config.checkpoint_every = config.checkpoint_every;
  trainer_config.optimizer.learning_rate = config.learning_rate;
  trainer_config.optimizer.weight_decay = 0.0;
  trainer_config.optimizer.warmup_steps = config.warmup_steps;
  trainer_config.optimizer.lr_schedule = "cosine";
  trainer_config.optimizer.min_lr_ratio = 0.1;
  trainer_config.optimizer.grad_clip = 1.0;
  trainer_config.retain_caption_dropout = 0.0;  // the denoise objective drops captions itself

  auto objective = unlearn::make_objective("denoise", {{"caption_dropout", config.caption_dropout}});
  unlearn::ObjectiveContext context;
  context.model = model.get();
  context.schedule = &model->schedule();
  context.data = &data;
  context.encode_captions = [&](const std::vector<std::string>& captions) { return model->context_for(captions); };

  unlearn::NamedTensors parameters;
  for (const auto& item : model->unet()->named_parameters()) parameters.emplace_back("diffusion_model." + item.key(), item.value());
  for (const auto& item : model->text_encoder()->named_parameters())
    parameters.emplace_back("text_encoder." + item.key(), item.value());

  unlearn::Trainer trainer(trainer_config, parameters, *objective, context);
  fs::path checkpoint = out;
  checkpoint.replace_extension(".checkpoint.safetensors");
  unlearn::TrainOutcome outcome = trainer.run(checkpoint, progress);
  trainer.apply_ema();

  int64_t parameter_count = 0;
  for (const auto& [name, tensor] : parameters) parameter_count += tensor.numel();
  double final_loss = 0;
  const size_t tail = std::min<size_t>(100, outcome.history.size());
  for (size_t i = outcome.history.size() - tail; i < outcome.history.size(); ++i) final_loss += outcome.history[i].at("loss");
  final_loss /= std::max<size_t>(1, tail);

  io::Metadata metadata = {{"lethe.bench_model", config.variant},
                           {"training_config", io::to_json(config).dump()},
                           {"data_sha256", bench.data_sha256},
                           {"steps", std::to_string(outcome.steps_done)},
                           {"seed", std::to_string(config.seed)}};
  model->save(out, metadata);
  std::error_code ignored;
  fs::remove(checkpoint, ignored);

  nlohmann::json card;
  card["model"] = config.variant;
  card["description"] = config.variant == "base"
                            ? "caption-conditioned LDM-layout UNet + token encoder trained on Fashion-MNIST with the artist "
                              "forget set repeated in the data (memorizes it)"
                            : "the same recipe and seed without the forget set (the retrained gold standard)";
  card["data_sha256"] = bench.data_sha256;
  card["training_examples"] = data.retain.size();
  card["config"] = io::to_json(config);
  card["seed"] = config.seed;
  card["steps"] = outcome.steps_done;
  card["wall_seconds"] = outcome.total_seconds;
  card["final_loss_mean_last_100"] = final_loss;
  card["parameter_count"] = parameter_count;
  card["threads"] = at::get_num_threads();
  std::vector<double> loss_curve;
  for (const auto& terms : outcome.history) loss_curve.push_back(terms.at("loss"));
  card["loss_curve"] = loss_curve;
  return write_model_card(out, card);
}

}  // namespace lethe::bench
