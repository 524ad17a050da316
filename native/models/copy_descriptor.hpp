// The bench's SSCD-style copy-detection descriptor (Pizzi et al. 2022, at small scale):
// a residual conv trunk, GeM pooling (p = 3), a linear projection and L2 normalisation.
// Its own preprocessing: grayscale [0, 1] images at their native 28x28, normalised with
// mean 0.5, std 0.5. File: "trunk.*", "projection.*"; metadata "lethe.format" =
// "lethe-descriptor/1" and "lethe.descriptor_config".
#pragma once

#include <filesystem>
#include <memory>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "io/safetensors.hpp"
#include "models/conv_trunk.hpp"

namespace lethe::models {

struct CopyDescriptorConfig {
  ConvTrunkConfig trunk;
  int64_t embedding_dim = 128;
  double gem_p = 3.0;
  int64_t input_size = 28;   // images are resized to this square size before embedding

  template <typename V>
  void visit(V& v) {
    v("trunk", trunk);
    v("embedding_dim", embedding_dim);
    v("gem_p", gem_p);
    v("input_size", input_size);
  }
};

// GeM pooling: (mean_{H,W} clamp(x, eps)^p)^(1/p). [B, C, H, W] -> [B, C]
at::Tensor gem_pool(const at::Tensor& x, double p, double eps = 1e-6);
// x / max(||x||_2, 1e-12) over dim 1 (F.normalize). [B, D] -> [B, D]
at::Tensor l2_normalize(const at::Tensor& x);

class CopyDescriptorImpl : public torch::nn::Module {
 public:
  explicit CopyDescriptorImpl(const CopyDescriptorConfig& config, const at::TensorOptions& options = {});
  // Preprocessed images [B, C, S, S] -> unit descriptors [B, embedding_dim]
  at::Tensor forward(const at::Tensor& x);
  // Images in [0, 1] of any size -> preprocess (resize, channel match, normalise) -> embed.
  at::Tensor embed(const at::Tensor& images);
  void initialize(uint64_t seed);
  const CopyDescriptorConfig& config() const { return config_; }

  static std::shared_ptr<CopyDescriptorImpl> load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path, const io::Metadata& metadata = {}) const;

 private:
  CopyDescriptorConfig config_;
  ConvTrunk trunk_{nullptr};
  LinearLayer projection_{nullptr};
};
TORCH_MODULE(CopyDescriptor);

}  // namespace lethe::models
