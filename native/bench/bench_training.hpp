// Training the bench's models with Lethe's own trainer, each with a model card.
#pragma once

#include <filesystem>
#include <string>

#include "bench/fashion_bench.hpp"
#include "core/progress.hpp"
#include "io/json_config.hpp"

namespace lethe::bench {

struct DiffusionTrainingConfig {
  std::string variant = "base";   // base (with the forget set) | retrained (without)
  int64_t steps = 4000;
  int64_t batch_size = 64;
  double learning_rate = 2e-4;
  int64_t warmup_steps = 200;
  double ema_decay = 0.999;
  double caption_dropout = 0.1;
  uint64_t seed = 0;
  int64_t checkpoint_every = 500;
  BenchConfig bench;

  template <typename V>
  void visit(V& v) {
    v("variant", variant);
    v("steps", steps);
    v("batch_size", batch_size);
    v("learning_rate", learning_rate);
    v("warmup_steps", warmup_steps);
    v("ema_decay", ema_decay);
    v("caption_dropout", caption_dropout);
    v("seed", seed);
    v("checkpoint_every", checkpoint_every);
    v("bench", bench);
  }
  void validate(const std::string& where) const;
};

// Trains the bench diffusion model and writes `out` (.safetensors) and `out` with
// .card.json. Resumes from `out`.checkpoint.safetensors when present. Returns the card.
nlohmann::json train_bench_diffusion(const DiffusionTrainingConfig& config, const std::filesystem::path& out,
                                     const ProgressCallback& progress = {});

// Checked before a bench model's training starts (which takes hours), not when it ends: `out`
// must name a file, and its folder must exist or be creatable. `where` names the command.
void check_model_output(const std::filesystem::path& out, const std::string& where);

// Writes a model card next to `model_file`: its SHA-256 plus `card`.
nlohmann::json write_model_card(const std::filesystem::path& model_file, nlohmann::json card);

}  // namespace lethe::bench
