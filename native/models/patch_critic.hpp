// The critic of the variational f-divergence objective (docs/methods.md §5.2): a
// patch-wise convolutional discriminator over a prediction and its spatial mask, the layout
// of the f-divergence unlearning paper's critic (a PatchGAN stack): `layers` 4x4 stride-2
// convolutions widening from `channels` (doubling, at most 8x), then two 4x4 stride-1
// convolutions, the last to one logit per patch; LeakyReLU(0.2) between them. Every
// convolution but the last is spectrally normalised (Miyato et al. 2018), with PyTorch's
// nn.utils.spectral_norm semantics: W / sigma, sigma = u^T W v from one power iteration per
// training forward (u, v updated in place), none in a frozen forward.
//
// The critic is plain tensors (no torch::nn module) so that its state is a flat, named
// tensor map for checkpoints, and its initialisation is drawn from a given generator
// (PyTorch's Conv2d default, U(+-1/sqrt(fan_in)) for weights and biases; u, v normalised
// standard normals) so that runs stay seeded and deterministic.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

namespace lethe::models {

struct PatchCriticConfig {
  int64_t channels = 64;       // width of the first convolution
  int64_t layers = 3;          // stride-2 convolutions
  bool spectral_norm = true;   // on every convolution but the last

  void validate(const std::string& where) const;
};

class PatchCritic {
 public:
  // A critic for inputs of `input_channels` (prediction channels + 1 mask channel),
  // initialised from `generator`.
  PatchCritic(int64_t input_channels, PatchCriticConfig config, at::Generator generator);
  // A critic whose tensors are `state` (from state(); strict: every name and shape).
  PatchCritic(int64_t input_channels, PatchCriticConfig config, const std::map<std::string, at::Tensor>& state,
              const std::string& where);

  // Logits per patch: x [B, C, H, W] and mask [B, 1, H, W] -> [B, 1, h, w].
  // update: a training forward (one power iteration, u and v updated, gradients reach the
  // weights); otherwise a frozen forward (stored u, v; weights detached, gradients reach x only).
  at::Tensor forward(const at::Tensor& x, const at::Tensor& mask, bool update);

  // The patch grid for an input of height x width; an error naming `where` when it is empty.
  static std::pair<int64_t, int64_t> output_size(int64_t height, int64_t width, const PatchCriticConfig& config,
                                                 const std::string& where);

  // Moves every tensor to `device` (weights stay leaves that require grad).
  void to(const at::Device& device);

  // Trainable tensors (weights and biases), in layer order, and the same by name.
  std::vector<at::Tensor> parameters() const;
  std::vector<std::pair<std::string, at::Tensor>> named_parameters() const;
  // Every tensor by name: "<i>.weight", "<i>.bias", and "<i>.u", "<i>.v" for normalised layers.
  std::map<std::string, at::Tensor> state() const;
  int64_t input_channels() const { return input_channels_; }

 private:
  struct Layer {
    at::Tensor weight, bias, u, v;  // u [out], v [in * k * k] when spectrally normalised
    int64_t stride = 1;
  };
  void build(const std::map<std::string, at::Tensor>* state, at::Generator* generator, const std::string& where);

  int64_t input_channels_;
  PatchCriticConfig config_;
  std::vector<Layer> layers_;
};

}  // namespace lethe::models
