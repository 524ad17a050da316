// The bench's image classifier: the residual conv trunk, global average pooling (its
// output is the bench's FID feature space, "FD-lethecls") and a linear head. Input:
// grayscale [0, 1] images at 28x28, normalised with mean 0.5, std 0.5. File: "trunk.*",
// "head.*"; metadata "lethe.format" = "lethe-classifier/1", "lethe.classifier_config".
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "io/safetensors.hpp"
#include "models/conv_trunk.hpp"

namespace lethe::models {

struct ClassifierConfig {
  ConvTrunkConfig trunk;
  std::vector<std::string> classes;
  int64_t input_size = 28;

  template <typename V>
  void visit(V& v) {
    v("trunk", trunk);
    v("classes", classes);
    v("input_size", input_size);
  }
};

class ClassifierImpl : public torch::nn::Module {
 public:
  explicit ClassifierImpl(const ClassifierConfig& config, const at::TensorOptions& options = {});
  // Preprocessed [B, C, S, S] -> (features [B, F], logits [B, classes])
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x);
  // Images in [0, 1] -> preprocess -> (features, logits)
  std::pair<at::Tensor, at::Tensor> classify(const at::Tensor& images);
  void initialize(uint64_t seed);
  const ClassifierConfig& config() const { return config_; }

  static std::shared_ptr<ClassifierImpl> load(const std::filesystem::path& path);
  void save(const std::filesystem::path& path, const io::Metadata& metadata = {}) const;

 private:
  ClassifierConfig config_;
  ConvTrunk trunk_{nullptr};
  LinearLayer head_{nullptr};
};
TORCH_MODULE(Classifier);

}  // namespace lethe::models
