// A diffusion model as Lethe trains, samples and saves it: the UNet, the optional token
// encoder of the embedded bench model, and the noise schedule it was trained with.
//
// File format (.safetensors): UNet weights under "diffusion_model.", token encoder weights
// under "text_encoder."; metadata "lethe.format" = "lethe-model/1", "lethe.unet_config",
// "lethe.text_encoder_config" and "lethe.schedule" (JSON), plus free-form provenance
// (objective, steps, seed, source model hash, ...). Stable Diffusion checkpoints load too
// (their UNet only; contexts then come from the host's CLIP).
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "diffusion/schedule.hpp"
#include "io/safetensors.hpp"
#include "models/denoiser.hpp"
#include "models/text_encoder.hpp"
#include "models/unet.hpp"

namespace lethe::models {

inline constexpr const char* kModelFormat = "lethe-model/1";

struct ModelLoadOptions {
  at::ScalarType dtype = at::kFloat;
  at::Device device = at::kCPU;
  std::optional<diffusion::ScheduleConfig> schedule;  // overrides the file's (or SD's default)
  UNetHints hints;
};

class DiffusionModel : public Denoiser {
 public:
  DiffusionModel(UNet unet, TokenEncoder text_encoder, diffusion::ScheduleConfig schedule);

  static std::shared_ptr<DiffusionModel> load(const std::filesystem::path& path, const ModelLoadOptions& options = {});
  // Saves atomically (exclusive: never over an existing file); `metadata` is added to the
  // format keys. Adapters are not saved here (see lora.hpp); merge or save them separately.
  void save(const std::filesystem::path& path, const io::Metadata& metadata = {},
            io::WriteMode mode = io::WriteMode::replace) const;
  // Saves exclusively with its provenance: source_metadata (objective, selections, steps, seed,
  // source hash) with the format keys replaced by this model's own.
  void save_with_provenance(const std::filesystem::path& path) const;

  at::Tensor predict(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning) override;
  // Without a vector input (y), the layers before the first cross-attention run once per image
  // (UNetImpl::forward_groups); with one (SDXL), as predict of the repeated rows.
  at::Tensor predict_groups(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning,
                            int64_t groups) override;
  // With autograd and without a vector input (y), the layers before the first cross-attention
  // run once for all conditionings (UNetImpl::forward_each); otherwise, predict per conditioning.
  std::vector<at::Tensor> predict_each(const at::Tensor& x_t, const at::Tensor& t,
                                       const std::vector<Conditioning>& conditionings) override;
  std::string prediction_type() const override { return schedule_.prediction_type; }
  std::vector<at::Tensor> trainable_parameters() override;
  // bf16 on a CPU: a bf16 copy of the UNet (adapters merged in), its activations and
  // convolution weights channels-last, which computes in bf16 without autocast (no weight
  // casts per forward) and whose group norms take the fused kernel (group_norm_kernel.hpp);
  // oneDNN's bf16 convolutions run about twice as fast channels-last. nullptr otherwise.
  std::shared_ptr<Denoiser> sampling_copy(Precision precision) override;

  // Context [B, L, D] for captions (needs the token encoder; errors otherwise).
  at::Tensor context_for(const std::vector<std::string>& captions);
  bool has_text_encoder() const { return !text_encoder_.is_empty(); }
  // Where the UNet's weights live (CPU for a model without parameters).
  c10::Device device() const;

  // What a copy does with the weights: its own (copied), or this model's storage (shared: no
  // memory for a frozen reference or a LoRA run's base; nothing may change them in place).
  enum class Weights { copied, shared };
  // A copy with its own modules (adapters, modes and gradient flags of its own), gradients off.
  std::shared_ptr<DiffusionModel> frozen_copy(Weights weights = Weights::copied) const;
  // Gradients on or off for every weight (UNet and token encoder).
  void set_requires_grad(bool requires_grad);

  UNet& unet() { return unet_; }
  const UNet& unet() const { return unet_; }
  TokenEncoder& text_encoder() { return text_encoder_; }
  const diffusion::ScheduleConfig& schedule_config() const { return schedule_; }
  const diffusion::NoiseSchedule& schedule() const { return noise_schedule_; }
  // Where the model came from (file path and SHA-256), empty for a fresh model.
  std::string source_path, source_sha256;
  io::Metadata source_metadata;

  // All weights by file key ("diffusion_model.*", "text_encoder.*").
  std::map<std::string, at::Tensor> weights() const;
  // SHA-256 of the weights as they are in memory (names, dtypes, shapes, values) and of the
  // noise schedule: what a run's identity records as its starting model.
  std::string weights_sha256() const;
  io::Metadata format_metadata() const;

 private:
  // predict and predict_groups: x_t [B], t [B], conditioning of groups * B rows.
  at::Tensor predict_rows(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning,
                          int64_t groups);
  // predict's set-up on the weights' device `here`: autocast when the caller's scope asks for
  // mixed precision (none for a sampling copy), and the UNet's layout for that precision.
  void begin_forward(std::optional<ForwardAutocast>& autocast, c10::Device here);
  // One forward pass of the UNet (predict's device, precision and layout already set).
  at::Tensor forward(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning, int64_t groups);

  UNet unet_;
  TokenEncoder text_encoder_;
  diffusion::ScheduleConfig schedule_;
  diffusion::NoiseSchedule noise_schedule_;
  bool weights_set_precision_ = false;  // a sampling copy: computes in its weights' dtype, no autocast
};

}  // namespace lethe::models
