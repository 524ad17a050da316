#include "models/classifier.hpp"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include "core/error.hpp"
#include "data/image.hpp"
#include "models/state_dict.hpp"

namespace lethe::models {

namespace {
constexpr const char* kClassifierFormat = "lethe-classifier/1";
constexpr const char* kClassifierConfigKey = "lethe.classifier_config";
}  // namespace

ClassifierImpl::ClassifierImpl(const ClassifierConfig& config, const at::TensorOptions& options) : config_(config) {
  check(!config.classes.empty(), "classifier: needs at least one class name");
  trunk_ = register_module("trunk", ConvTrunk(config.trunk, options));
  head_ = register_module("head", LinearLayer(config.trunk.widths.back(), static_cast<int64_t>(config.classes.size()),
                                              true, options));
}

void ClassifierImpl::initialize(uint64_t seed) {
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  reset_all_parameters(*this, generator);
}

std::pair<at::Tensor, at::Tensor> ClassifierImpl::forward(const at::Tensor& x) {
  at::Tensor features = trunk_(x).mean({2, 3});  // [B, F]
  return {features, head_(features)};            // [B, F], [B, classes]
}

std::pair<at::Tensor, at::Tensor> ClassifierImpl::classify(const at::Tensor& images) {
  check(images.dim() == 4, "classifier: expected images [B, C, H, W] in [0, 1], got ", images.sizes());
  at::Tensor x = images.to(at::kFloat);
  if (x.size(1) == 3 && config_.trunk.in_channels == 1)
    x = (0.299 * x.select(1, 0) + 0.587 * x.select(1, 1) + 0.114 * x.select(1, 2)).unsqueeze(1);
  check(x.size(1) == config_.trunk.in_channels, "classifier: images have ", images.size(1), " channels, expected ",
        config_.trunk.in_channels);
  x = data::resize_image(x, config_.input_size, config_.input_size);
  return forward((x - 0.5) / 0.5);
}

std::shared_ptr<ClassifierImpl> ClassifierImpl::load(const std::filesystem::path& path) {
  const std::string where = str("classifier '", path.string(), "'");
  const io::SafetensorsFile file = io::SafetensorsFile::open(path);
  auto format = file.metadata().find("lethe.format");
  check(format != file.metadata().end() && format->second == kClassifierFormat, where, ": expected lethe.format '",
        kClassifierFormat, "', got ", format == file.metadata().end() ? "none" : "'" + format->second + "'");
  auto config = io::read_config<ClassifierConfig>(io::parse_json(file.metadata_value(kClassifierConfigKey, "a Lethe classifier file"), where), where);
  auto classifier = std::make_shared<ClassifierImpl>(config);
  load_state_dict_strict(*classifier, file.tensors(), where);
  return classifier;
}

void ClassifierImpl::save(const std::filesystem::path& path, const io::Metadata& metadata) const {
  io::Metadata all = metadata;
  all["lethe.format"] = kClassifierFormat;
  all[kClassifierConfigKey] = io::to_json(config_).dump();
  all["preprocessing"] = "grayscale [0,1], bilinear-antialiased resize to input_size, (x - 0.5) / 0.5";
  io::save_safetensors(path, state_dict(*this), all);
}

}  // namespace lethe::models
