// The one interface every model back-end implements: model_output = f(x_t, t, conditioning).
// The native UNet, a LoRA-patched UNet and a host (ComfyUI) model all sit behind it, so
// samplers and unlearning objectives never know which one they drive.
#pragma once

#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "models/conditioning.hpp"

namespace lethe::models {

class Denoiser {
 public:
  virtual ~Denoiser() = default;
  // x_t [B, C, H, W], t [B] (int64 timesteps in 0..T-1), conditioning of B rows (a context
  // [B, L, D] converts) -> [B, C, H, W] in the parameterisation of prediction_type().
  virtual at::Tensor predict(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning) = 0;
  virtual std::string prediction_type() const { return "epsilon"; }
  // Tensors the trainer updates (full parameters or adapters).
  virtual std::vector<at::Tensor> trainable_parameters() = 0;
};

}  // namespace lethe::models
