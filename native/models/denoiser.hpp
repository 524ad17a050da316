// The one interface every model back-end implements: model_output = f(x_t, t, conditioning).
// The native UNet, a LoRA-patched UNet and a host (ComfyUI) model all sit behind it, so
// samplers and unlearning objectives never know which one they drive.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "core/precision.hpp"
#include "models/conditioning.hpp"

namespace lethe::models {

class Denoiser {
 public:
  virtual ~Denoiser() = default;
  // x_t [B, C, H, W], t [B] (int64 timesteps in 0..T-1), conditioning of B rows (a context
  // [B, L, D] converts) -> [B, C, H, W] in the parameterisation of prediction_type(), on
  // x_t's device: a model whose weights live elsewhere (a GPU) moves the inputs there and its
  // output back, so objectives and samplers keep their tensors where the data is.
  virtual at::Tensor predict(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning) = 0;
  // Each image under `groups` conditionings at once (classifier-free guidance: the unconditional
  // and the conditional rows in one forward): x_t [B, C, H, W], t [B], conditioning of
  // groups * B rows (group g's are rows g B .. g B + B - 1) -> [groups * B, C, H, W], what predict
  // gives for x_t and t repeated groups times. A model may compute the work the groups share once
  // (DiffusionModel: the layers before the first cross-attention).
  virtual at::Tensor predict_groups(const at::Tensor& x_t, const at::Tensor& t, const Conditioning& conditioning,
                                    int64_t groups) {
    return predict(x_t.repeat({groups, 1, 1, 1}), t.repeat({groups}), conditioning);
  }
  // x_t under each of several conditionings (SISS: the retain and the forget condition of one
  // noisy mixture): one output per conditioning, each what predict(x_t, t, conditionings[k])
  // gives and with a graph of its own, so a backward from one output runs through no other's
  // layers. A model may compute the work the conditionings share once (DiffusionModel, with
  // autograd: the layers before the first cross-attention).
  virtual std::vector<at::Tensor> predict_each(const at::Tensor& x_t, const at::Tensor& t,
                                               const std::vector<Conditioning>& conditionings) {
    std::vector<at::Tensor> outputs;
    for (const Conditioning& conditioning : conditionings) outputs.push_back(predict(x_t, t, conditioning));
    return outputs;
  }
  virtual std::string prediction_type() const { return "epsilon"; }
  // Tensors the trainer updates (full parameters or adapters).
  virtual std::vector<at::Tensor> trainable_parameters() = 0;
  // A model with this one's outputs that sampling in `precision` (fp32, bf16 or fp16) drives instead
  // of it, for the whole sampling call: its weights converted once to that precision and the
  // fastest layout. nullptr: sample with this model itself (the default).
  virtual std::shared_ptr<Denoiser> sampling_copy(Precision precision) { return nullptr; }
};

}  // namespace lethe::models
